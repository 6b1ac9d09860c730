//! The words the server itself writes for people: mails and texts in the recipient's language,
//! and the audit log in the reader's language. English and German, as in the console.
//!
//! Codes (error codes, audit actions) stay English identifiers in the API; what is here is only
//! what a person reads.

use chrono::{DateTime, Utc};

/// A language the broker writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    /// `en` or `de`; anything else is `None` (a clear error at the API).
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Self::En),
            "de" => Some(Self::De),
            _ => None,
        }
    }

    /// A stored code; an unknown one reads as English.
    pub fn or_en(code: &str) -> Self {
        Self::parse(code).unwrap_or_default()
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }

    /// The first language of an `Accept-Language` header that the broker writes (`de-DE,de;q=0.9`
    /// → German); English when none is.
    pub fn from_accept(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::En;
        };
        let mut best: Option<(f32, Self)> = None;
        for part in header.split(',').take(16) {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Self::parse(primary) else {
                continue;
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    fn pick(self, en: &'static str, de: &'static str) -> &'static str {
        match self {
            Self::En => en,
            Self::De => de,
        }
    }

    /// A point in time as people of the language write it (always UTC, said so).
    pub fn time(self, at: DateTime<Utc>) -> String {
        match self {
            Self::En => at.format("%Y-%m-%d %H:%M UTC").to_string(),
            Self::De => at.format("%d.%m.%Y %H:%M UTC").to_string(),
        }
    }
}

/// A mail: subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Why a set-password link goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWhy {
    NewUser,
    Reset,
    Admin,
}

/// The set-password mail.
pub fn set_password_mail(
    lang: Lang,
    why: LinkWhy,
    name: &str,
    account: &str,
    username: &str,
    link: &str,
    until: DateTime<Utc>,
) -> Mail {
    let until = lang.time(until);
    let (subject, reason) = match (lang, why) {
        (Lang::En, LinkWhy::NewUser) => (
            format!("Your support-broker account in {account}"),
            format!("an account was created for you in \"{account}\"."),
        ),
        (Lang::De, LinkWhy::NewUser) => (
            format!("Ihr support-broker-Zugang für {account}"),
            format!("für Sie wurde ein Zugang in \"{account}\" angelegt."),
        ),
        (Lang::En, LinkWhy::Reset) => (
            format!("Set a new support-broker password ({account})"),
            "someone (we hope you) asked to set a new password for your account. If it was not \
             you, ignore this mail: your password stays as it is."
                .to_string(),
        ),
        (Lang::De, LinkWhy::Reset) => (
            format!("Neues support-broker-Passwort setzen ({account})"),
            "jemand (hoffentlich Sie) hat ein neues Passwort für Ihren Zugang angefordert. Wenn \
             Sie es nicht waren, ignorieren Sie diese Mail: Ihr Passwort bleibt, wie es ist."
                .to_string(),
        ),
        (Lang::En, LinkWhy::Admin) => (
            format!("Set your support-broker password ({account})"),
            format!("an administrator of \"{account}\" sent you a link to set your password."),
        ),
        (Lang::De, LinkWhy::Admin) => (
            format!("Ihr support-broker-Passwort setzen ({account})"),
            format!(
                "ein Administrator von \"{account}\" hat Ihnen einen Link zum Setzen Ihres Passworts geschickt."
            ),
        ),
    };
    let body = match lang {
        Lang::En => format!(
            "Hello {name},\n\n{reason}\n\nAccount: {account}\nLogin name: {username}\n\nSet your password with this link (valid until {until}, usable once; earlier links no longer work):\n{link}\n"
        ),
        Lang::De => format!(
            "Guten Tag {name},\n\n{reason}\n\nKonto: {account}\nAnmeldename: {username}\n\nSetzen Sie Ihr Passwort mit diesem Link (gültig bis {until}, nur einmal verwendbar; frühere Links gelten nicht mehr):\n{link}\n"
        ),
    };
    Mail { subject, body }
}

/// The login code, as a mail (subject and body) or, with `subject` unused, as a text message.
pub fn login_code(lang: Lang, account: &str, code: &str, minutes: u64) -> Mail {
    match lang {
        Lang::En => Mail {
            subject: format!("Your login code ({account})"),
            body: format!(
                "Your support-broker login code for {account}: {code} (valid {minutes} minutes)"
            ),
        },
        Lang::De => Mail {
            subject: format!("Ihr Anmeldecode ({account})"),
            body: format!(
                "Ihr support-broker-Anmeldecode für {account}: {code} (gültig {minutes} Minuten)"
            ),
        },
    }
}

/// The mail that confirms a new address of a user.
pub fn confirm_email_mail(
    lang: Lang,
    name: &str,
    account: &str,
    link: &str,
    until: DateTime<Utc>,
) -> Mail {
    let until = lang.time(until);
    match lang {
        Lang::En => Mail {
            subject: format!("Confirm your new email address ({account})"),
            body: format!(
                "Hello {name},\n\nthis address was entered as the new email address of your support-broker login in \"{account}\". It takes effect once you open this link (valid until {until}, usable once):\n{link}\n\nIf you did not expect this mail, ignore it: nothing changes.\n"
            ),
        },
        Lang::De => Mail {
            subject: format!("Neue E-Mail-Adresse bestätigen ({account})"),
            body: format!(
                "Guten Tag {name},\n\ndiese Adresse wurde als neue E-Mail-Adresse Ihres support-broker-Zugangs in \"{account}\" eingetragen. Sie gilt, sobald Sie diesen Link öffnen (gültig bis {until}, nur einmal verwendbar):\n{link}\n\nWenn Sie diese Mail nicht erwartet haben, ignorieren Sie sie: es ändert sich nichts.\n"
            ),
        },
    }
}

/// The invitation a guest is mailed: who invites, to what, the link and the inviter's message
/// (never its internal comment).
pub fn invitation_mail(
    lang: Lang,
    guest: &str,
    inviter: &str,
    account: &str,
    subject: &str,
    link: &str,
    until: DateTime<Utc>,
) -> Mail {
    let until = lang.time(until);
    match lang {
        Lang::En => Mail {
            subject: format!("Invitation to a support session: {subject}"),
            body: format!(
                "Hello {guest},\n\n{inviter} ({account}) invites you to the support session \"{subject}\".\n\nJoin with this one-time link (valid until {until}):\n{link}\n"
            ),
        },
        Lang::De => Mail {
            subject: format!("Einladung zu einer Support-Sitzung: {subject}"),
            body: format!(
                "Guten Tag {guest},\n\n{inviter} ({account}) lädt Sie zur Support-Sitzung \"{subject}\" ein.\n\nTreten Sie mit diesem einmaligen Link bei (gültig bis {until}):\n{link}\n"
            ),
        },
    }
}

/// To a customer's admins (area `access`): a partner asks for access.
pub fn access_request_mail(
    lang: Lang,
    customer: &str,
    partner: &str,
    requester: &str,
    support_user: bool,
    message: Option<&str>,
    link: &str,
) -> Mail {
    let note = message.map(|m| format!("\n\n\"{m}\"")).unwrap_or_default();
    match lang {
        Lang::En => Mail {
            subject: format!("{partner} asks for access to {customer}"),
            body: format!(
                "{requester} of the partner {partner} asks for access to your account {customer}{}.{note}\n\nApprove or reject it in the console:\n{link}\n",
                if support_user {
                    ", with a support login"
                } else {
                    ""
                }
            ),
        },
        Lang::De => Mail {
            subject: format!("{partner} bittet um Zugriff auf {customer}"),
            body: format!(
                "{requester} vom Partner {partner} bittet um Zugriff auf Ihr Konto {customer}{}.{note}\n\nGenehmigen oder ablehnen können Sie das in der Konsole:\n{link}\n",
                if support_user {
                    ", mit Support-Anmeldung"
                } else {
                    ""
                }
            ),
        },
    }
}

/// What became of a partner's access: `approved` (until `until`, or without end), `rejected`
/// or `revoked`.
pub fn access_decision_mail(
    lang: Lang,
    customer: &str,
    decision: &str,
    until: Option<DateTime<Utc>>,
    link: &str,
) -> Mail {
    let until = until.map(|u| lang.time(u));
    match lang {
        Lang::En => {
            let what = match decision {
                "approved" => match &until {
                    Some(u) => format!("approved your access request (until {u})"),
                    None => "approved your access request".to_string(),
                },
                "rejected" => "rejected your access request".to_string(),
                "changed" => match &until {
                    Some(u) => format!("changed your access (it now ends {u})"),
                    None => "changed your access (it has no end)".to_string(),
                },
                _ => "revoked your access".to_string(),
            };
            Mail {
                subject: format!("{customer} {what}"),
                body: format!(
                    "The customer {customer} {what}.\n\nYour customers in the console:\n{link}\n"
                ),
            }
        }
        Lang::De => {
            let what = match decision {
                "approved" => match &until {
                    Some(u) => format!("hat Ihre Zugriffsanfrage genehmigt (bis {u})"),
                    None => "hat Ihre Zugriffsanfrage genehmigt".to_string(),
                },
                "rejected" => "hat Ihre Zugriffsanfrage abgelehnt".to_string(),
                "changed" => match &until {
                    Some(u) => format!("hat Ihren Zugriff geändert (er endet jetzt {u})"),
                    None => "hat Ihren Zugriff geändert (er endet nicht)".to_string(),
                },
                _ => "hat Ihren Zugriff widerrufen".to_string(),
            };
            Mail {
                subject: format!("{customer} {what}"),
                body: format!(
                    "Der Kunde {customer} {what}.\n\nIhre Kunden in der Konsole:\n{link}\n"
                ),
            }
        }
    }
}

/// An audit action in words; an action without words reads as its code.
pub fn audit_action(lang: Lang, action: &str) -> &str {
    let (en, de) = match action {
        "access.approved" => ("approved partner access", "Partnerzugriff genehmigt"),
        "access.expired" => ("partner access expired", "Partnerzugriff abgelaufen"),
        "access.rejected" => ("rejected partner access", "Partnerzugriff abgelehnt"),
        "access.requested" => ("asked for partner access", "Partnerzugriff angefragt"),
        "access.revoked" => ("revoked partner access", "Partnerzugriff widerrufen"),
        "access.support_login" => (
            "signed in through partner access",
            "über Partnerzugriff angemeldet",
        ),
        "account.changed" => ("changed the account", "Konto geändert"),
        "account.created" => ("created the account", "Konto angelegt"),
        "api_key.created" => ("created an API key", "API-Schlüssel erstellt"),
        "api_key.deleted" => ("revoked an API key", "API-Schlüssel widerrufen"),
        "device.action" => ("sent a command to a device", "Befehl an Gerät gesendet"),
        "access.changed" => ("changed a partner's access", "Partnerzugriff geändert"),
        "access.renewal_requested" => (
            "asked to renew a partner access",
            "Verlängerung eines Partnerzugriffs erbeten",
        ),
        "device.action_refused" => (
            "was refused a command without a valid step-up",
            "Befehl ohne gültige Bestätigung abgelehnt",
        ),
        "device.assigned" => ("assigned a partner device", "Partnergerät zugewiesen"),
        "device.changed" => ("changed a device", "Gerät geändert"),
        "device.created" => ("added a device", "Gerät hinzugefügt"),
        "device.deleted" => ("deleted a device", "Gerät gelöscht"),
        "device.enrolled" => ("enrolled a device", "Gerät registriert"),
        "device.enrollment_code_created" => {
            ("created an enrollment code", "Registrierungscode erstellt")
        }
        "device.enrollment_code_revoked" => (
            "revoked an enrollment code",
            "Registrierungscode widerrufen",
        ),
        "device.imported" => ("imported devices from CSV", "Geräte aus CSV importiert"),
        "device.linked" => (
            "linked a device to a user",
            "Gerät einem Benutzer zugeordnet",
        ),
        "device.preassigned" => ("pre-assigned a device", "Gerät vorab zugeordnet"),
        "device.released" => ("released a device", "Gerät freigegeben"),
        "device.unassigned" => ("took back a partner device", "Partnergerät zurückgenommen"),
        "group.created" => ("created a device group", "Gerätegruppe angelegt"),
        "group.deleted" => ("deleted a device group", "Gerätegruppe gelöscht"),
        "group.renamed" => ("renamed a device group", "Gerätegruppe umbenannt"),
        "invitation.created" => ("invited a guest", "Gast eingeladen"),
        "invitation.revoked" => ("revoked an invitation", "Einladung widerrufen"),
        "login.failed" => ("failed to sign in", "Anmeldung fehlgeschlagen"),
        "login.succeeded" => ("signed in", "angemeldet"),
        "policy.changed" => (
            "changed a security policy",
            "Sicherheitsrichtlinie geändert",
        ),
        "policy.created" => (
            "created a security policy",
            "Sicherheitsrichtlinie angelegt",
        ),
        "policy.deleted" => (
            "deleted a security policy",
            "Sicherheitsrichtlinie gelöscht",
        ),
        "session.created" => ("started a support session", "Support-Sitzung gestartet"),
        "support.account_login" => (
            "entered the account as vendor support",
            "als Hersteller-Support ins Konto gewechselt",
        ),
        "support.user_login" => (
            "acted as a user as vendor support",
            "als Hersteller-Support als Benutzer angemeldet",
        ),
        "user.changed" => ("changed a user", "Benutzer geändert"),
        "user.code_step_unlocked" => (
            "unlocked a user's code step",
            "Code-Sperre eines Benutzers aufgehoben",
        ),
        "user.created" => ("created a user", "Benutzer angelegt"),
        "user.deleted" => ("deleted a user", "Benutzer gelöscht"),
        "user.email_change_requested" => (
            "asked to change an email address",
            "Änderung einer E-Mail-Adresse angefordert",
        ),
        "user.email_confirmed" => (
            "confirmed a new email address",
            "neue E-Mail-Adresse bestätigt",
        ),
        "user.password_changed" => ("changed the password", "Passwort geändert"),
        "user.password_link_sent" => (
            "sent a set-password link",
            "Link zum Passwortsetzen gesendet",
        ),
        "user.password_reset_requested" => (
            "asked for a password reset",
            "Passwort-Zurücksetzung angefordert",
        ),
        "user.password_set" => (
            "set a password through a link",
            "Passwort über einen Link gesetzt",
        ),
        "user.recovery_code_used" => (
            "signed in with a recovery code",
            "mit einem Wiederherstellungscode angemeldet",
        ),
        "user.restored" => ("restored a user", "Benutzer wiederhergestellt"),
        "user.rights_changed" => ("changed a user's rights", "Rechte eines Benutzers geändert"),
        "user.totp_setup_started" => (
            "started setting up an authenticator app",
            "Einrichtung einer Authenticator-App begonnen",
        ),
        "user.two_factor_changed" => ("changed the second factor", "zweiten Faktor geändert"),
        _ => return action,
    };
    lang.pick(en, de)
}

/// How an audit entry's actor came in, in words.
pub fn audit_via(lang: Lang, via: &str) -> &str {
    let (en, de) = match via {
        "login" => ("own login", "eigene Anmeldung"),
        "api_key" => ("API key", "API-Schlüssel"),
        "vendor_support" => ("vendor support", "Hersteller-Support"),
        "partner_support" => ("partner support access", "Partner-Supportzugang"),
        "enrollment" => ("device enrollment", "Geräteregistrierung"),
        "expiry" => ("expiry", "Ablauf"),
        "set_password_link" => ("set-password link", "Link zum Passwortsetzen"),
        "password_reset" => ("password reset", "Passwort-Zurücksetzung"),
        "admin_cli" => ("operator on the server", "Betreiber auf dem Server"),
        "ticket" => ("own login", "eigene Anmeldung"),
        "email_link" => ("confirmation link", "Bestätigungslink"),
        _ => return via,
    };
    lang.pick(en, de)
}

/// Every audit action the broker writes has words in both languages.
pub const AUDIT_ACTIONS: &[&str] = &[
    "access.approved",
    "access.expired",
    "access.rejected",
    "access.requested",
    "access.revoked",
    "access.support_login",
    "account.changed",
    "account.created",
    "api_key.created",
    "api_key.deleted",
    "device.action",
    "device.action_refused",
    "access.changed",
    "access.renewal_requested",
    "device.assigned",
    "device.changed",
    "device.created",
    "device.deleted",
    "device.enrolled",
    "device.enrollment_code_created",
    "device.enrollment_code_revoked",
    "device.imported",
    "device.linked",
    "device.preassigned",
    "device.released",
    "device.unassigned",
    "group.created",
    "group.deleted",
    "group.renamed",
    "invitation.created",
    "invitation.revoked",
    "login.failed",
    "login.succeeded",
    "policy.changed",
    "policy.created",
    "policy.deleted",
    "session.created",
    "support.account_login",
    "support.user_login",
    "user.changed",
    "user.code_step_unlocked",
    "user.created",
    "user.deleted",
    "user.email_change_requested",
    "user.email_confirmed",
    "user.password_changed",
    "user.password_link_sent",
    "user.password_reset_requested",
    "user.password_set",
    "user.recovery_code_used",
    "user.restored",
    "user.rights_changed",
    "user.totp_setup_started",
    "user.two_factor_changed",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_known_language() {
        assert_eq!(Lang::from_accept(Some("de-DE,de;q=0.9,en;q=0.8")), Lang::De);
        assert_eq!(Lang::from_accept(Some("fr-FR,en;q=0.5,de;q=0.7")), Lang::De);
        assert_eq!(Lang::from_accept(Some("fr-FR")), Lang::En);
        assert_eq!(Lang::from_accept(None), Lang::En);
        assert_eq!(Lang::from_accept(Some("en-GB;q=0.2,de;q=0.1")), Lang::En);
    }

    #[test]
    fn every_action_has_words_in_both_languages() {
        for action in AUDIT_ACTIONS {
            for lang in [Lang::En, Lang::De] {
                assert_ne!(audit_action(lang, action), *action, "{action} in {lang:?}");
            }
            assert_ne!(
                audit_action(Lang::En, action),
                audit_action(Lang::De, action)
            );
        }
    }

    /// Every action literal the sources write has words: a new action without them fails here.
    #[test]
    fn every_action_written_in_the_sources_has_words() {
        const FAMILIES: &[&str] = &[
            "access.",
            "account.",
            "api_key.",
            "device.",
            "group.",
            "invitation.",
            "login.",
            "policy.",
            "session.",
            "support.",
            "user.",
        ];
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = 0;
        for file in files {
            if file.ends_with("i18n.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                let is_action = FAMILIES.iter().any(|f| literal.starts_with(f))
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    && literal.matches('.').count() == 1
                    && !literal.ends_with(".js")
                    && !literal.ends_with('.');
                if is_action {
                    found += 1;
                    assert!(
                        AUDIT_ACTIONS.contains(&literal),
                        "{literal} in {} has no words in i18n.rs",
                        file.display()
                    );
                }
            }
        }
        assert!(found > 40, "the scan found the actions ({found})");
    }

    #[test]
    fn german_mails_have_no_english_frame() {
        let until = Utc::now();
        let m = set_password_mail(
            Lang::De,
            LinkWhy::NewUser,
            "Ada",
            "Acme",
            "ada",
            "https://x/l",
            until,
        );
        assert!(m.subject.contains("Acme") && m.body.contains("Anmeldename: ada"));
        assert!(!m.body.contains("Hello") && !m.body.contains("Login name"));
    }
}
