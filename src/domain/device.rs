//! Devices and the commands sent to them: platforms, self-service actions, which platform
//! supports which action, command states, the agent's frames and the CSV import's plan.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The operating system family of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
    Windows,
    Macos,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Ios,
        Platform::Android,
        Platform::Windows,
        Platform::Macos,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Windows => "windows",
            Platform::Macos => "macos",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a self-service user (or an admin) asks a device to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    LostModeOn,
    LostModeOff,
    Locate,
    Wipe,
    Lock,
    ResetPasscode,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::LostModeOn,
        Action::LostModeOff,
        Action::Locate,
        Action::Wipe,
        Action::Lock,
        Action::ResetPasscode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::LostModeOn => "lost_mode_on",
            Action::LostModeOff => "lost_mode_off",
            Action::Locate => "locate",
            Action::Wipe => "wipe",
            Action::Lock => "lock",
            Action::ResetPasscode => "reset_passcode",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the action cannot be undone, so the user confirms it with its password.
    /// Destructive actions that need a step-up: the password, or a second factor proven in
    /// the last five minutes.
    pub fn needs_reauth(self) -> bool {
        matches!(self, Action::Wipe | Action::ResetPasscode)
    }
}

/// The contract's platform table: which action each platform supports.
pub fn supports(platform: Platform, action: Action) -> bool {
    use Action::*;
    use Platform::*;
    match action {
        LostModeOn | LostModeOff | ResetPasscode => matches!(platform, Ios | Android),
        Locate => platform != Macos,
        Wipe => true,
        Lock => platform != Windows,
    }
}

/// Where a command is: stored (`queued`), handed to the connected agent (`sent`), answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Queued,
    Sent,
    Done,
    Failed,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Sent => "sent",
            CommandStatus::Done => "done",
            CommandStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Sent, Self::Done, Self::Failed]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, CommandStatus::Done | CommandStatus::Failed)
    }
}

/// A device's last known position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A position as an agent reports it (the broker stamps the time when the agent gives none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedLocation {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: f64,
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ReportedLocation {
    /// Checks the ranges; `None` for an impossible position.
    pub fn stamped(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Location> {
        let ok = (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
            && self.accuracy_m.is_finite()
            && self.accuracy_m >= 0.0;
        ok.then(|| Location {
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            at: self.at.filter(|at| *at <= now).unwrap_or(now),
        })
    }
}

/// What a command, answered `done`, changes in the broker's record of its device.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    LostMode(bool),
    Location(Location),
    /// A wiped device forgets its secret; it must enroll again.
    SecretEnded,
}

/// The effects of a finished command; a failed one changes nothing.
pub fn effects(
    action: Action,
    status: CommandStatus,
    result: Option<&serde_json::Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Effect> {
    if status != CommandStatus::Done {
        return Vec::new();
    }
    match action {
        Action::LostModeOn => vec![Effect::LostMode(true)],
        Action::LostModeOff => vec![Effect::LostMode(false)],
        Action::Locate => result
            .and_then(|r| serde_json::from_value::<ReportedLocation>(r.clone()).ok())
            .and_then(|l| l.stamped(now))
            .map(Effect::Location)
            .into_iter()
            .collect(),
        Action::Wipe => vec![Effect::LostMode(false), Effect::SecretEnded],
        Action::Lock | Action::ResetPasscode => Vec::new(),
    }
}

/// What one CSV row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    Linked,
    UnknownSerial,
    UnknownUser,
    Duplicate,
}

/// One row of the import report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportRow {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    pub serial: String,
    pub username: String,
    pub outcome: ImportOutcome,
}

/// Decides each row of an import: a serial named on an earlier line is a duplicate; otherwise
/// the serial must name a device the importer sees and the username a live user of the account.
/// `device` and `user` look them up; the plan is applied only for `Linked` rows.
pub fn plan_import<D, U>(
    rows: &[(u64, String, String)],
    mut device: impl FnMut(&str) -> Option<D>,
    mut user: impl FnMut(&str) -> Option<U>,
) -> Vec<(ImportRow, Option<(D, U)>)> {
    let mut seen = HashSet::new();
    rows.iter()
        .map(|(line, serial, username)| {
            let row = |outcome| ImportRow {
                line: *line,
                serial: serial.clone(),
                username: username.clone(),
                outcome,
            };
            if !seen.insert(serial.clone()) {
                return (row(ImportOutcome::Duplicate), None);
            }
            let Some(d) = device(serial) else {
                return (row(ImportOutcome::UnknownSerial), None);
            };
            let Some(u) = user(username) else {
                return (row(ImportOutcome::UnknownUser), None);
            };
            (row(ImportOutcome::Linked), Some((d, u)))
        })
        .collect()
}

/// A serial number as printed on a device: 1 to 64 printable characters without spaces.
pub fn parse_serial(value: &str) -> Option<String> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.chars().count() <= 64
        && v.chars()
            .all(|c| c.is_ascii_graphic() || c.is_alphanumeric());
    ok.then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_table_is_the_contracts() {
        use Action::*;
        let table = [
            (LostModeOn, [true, true, false, false]),
            (LostModeOff, [true, true, false, false]),
            (Locate, [true, true, true, false]),
            (Wipe, [true, true, true, true]),
            (Lock, [true, true, false, true]),
            (ResetPasscode, [true, true, false, false]),
        ];
        for (action, row) in table {
            for (platform, expected) in Platform::ALL.into_iter().zip(row) {
                assert_eq!(
                    supports(platform, action),
                    expected,
                    "{action:?} on {platform:?}"
                );
            }
        }
    }

    #[test]
    fn only_done_commands_change_the_device() {
        let now = chrono::Utc::now();
        let located = serde_json::json!({"lat": 52.5, "lon": 13.4, "accuracy_m": 8.0});
        assert!(matches!(
            effects(Action::Locate, CommandStatus::Done, Some(&located), now).as_slice(),
            [Effect::Location(l)] if l.lat == 52.5 && l.at == now
        ));
        assert!(effects(Action::Locate, CommandStatus::Failed, Some(&located), now).is_empty());
        assert!(
            effects(
                Action::Locate,
                CommandStatus::Done,
                Some(&serde_json::json!({})),
                now
            )
            .is_empty()
        );
        assert_eq!(
            effects(Action::Wipe, CommandStatus::Done, None, now),
            [Effect::LostMode(false), Effect::SecretEnded]
        );
        assert_eq!(
            effects(Action::LostModeOn, CommandStatus::Done, None, now),
            [Effect::LostMode(true)]
        );
    }

    #[test]
    fn impossible_positions_are_refused() {
        let now = chrono::Utc::now();
        let at = |lat, lon| ReportedLocation {
            lat,
            lon,
            accuracy_m: 5.0,
            at: None,
        };
        assert!(at(48.1, 11.5).stamped(now).is_some());
        assert!(at(91.0, 0.0).stamped(now).is_none());
        assert!(at(0.0, -181.0).stamped(now).is_none());
    }

    #[test]
    fn import_plan_marks_duplicates_and_unknowns() {
        let rows = vec![
            (2, "S1".to_string(), "ann".to_string()),
            (3, "S9".to_string(), "ann".to_string()),
            (4, "S2".to_string(), "nobody".to_string()),
            (5, "S1".to_string(), "bob".to_string()),
        ];
        let plan = plan_import(
            &rows,
            |s| ["S1", "S2"].contains(&s).then_some(s.to_string()),
            |u| ["ann", "bob"].contains(&u).then_some(u.to_string()),
        );
        let outcomes: Vec<_> = plan.iter().map(|(r, _)| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                ImportOutcome::Linked,
                ImportOutcome::UnknownSerial,
                ImportOutcome::UnknownUser,
                ImportOutcome::Duplicate
            ]
        );
        assert_eq!(plan[0].1, Some(("S1".to_string(), "ann".to_string())));
    }
}
