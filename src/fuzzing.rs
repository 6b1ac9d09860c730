//! The entry points of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer). `cargo test`
//! replays each target's committed corpus through them (`tests/api/fuzz_corpus.rs`), so CI
//! needs no nightly toolchain. Each must return, never panic, whatever the bytes; where a rule
//! can be checked on the result, it is asserted here, so that the fuzzer looks for a breach.

use std::collections::HashMap;

use crate::{
    actors::protocol::parse_client_frame,
    config::Settings,
    domain::{
        permissions::{Permission, PermissionSet},
        session::{Channel, Kind, Route, route},
    },
};

/// A participant's text frame: any UTF-8 text through the frame parser.
pub fn client_frame(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_client_frame(text);
    }
}

/// A binary frame: its channel byte through the router, for a sender and permissions taken
/// from the next two bytes. Input goes to the customer only from a holder of `control`, files
/// only from a holder of `files`, and the customer never sends input; screen frames come only
/// from the customer.
pub fn binary_frame(data: &[u8]) {
    let Some(channel) = data.first().copied().and_then(Channel::from_byte) else {
        return;
    };
    let sender = match data.get(1).copied().unwrap_or(0) % 3 {
        0 => Kind::Technician,
        1 => Kind::Guest,
        _ => Kind::Customer,
    };
    let bits = data.get(2).copied().unwrap_or(0);
    let perms = Permission::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .fold(PermissionSet::NONE, |set, (_, p)| set.with(*p));
    match (channel, route(sender, perms, channel)) {
        (Channel::Input, Route::ToCustomer) => {
            assert!(sender != Kind::Customer && perms.contains(Permission::Control));
        }
        (Channel::File, Route::ToCustomer) => {
            assert!(sender != Kind::Customer && perms.contains(Permission::Files));
        }
        (Channel::Screen, Route::ToHolders(_)) => assert!(sender == Kind::Customer),
        (Channel::Screen, Route::ToCustomer) => panic!("screen frames never go to the customer"),
        _ => {}
    }
}

/// A CSV import body through the import parser: rows come back with both fields.
pub fn csv_import(data: &[u8]) {
    if let Ok(rows) = crate::http::devices::parse_import(data) {
        for (line, _, _) in rows {
            assert!(line >= 1);
        }
    }
}

/// Settings: the bytes up to the first NUL as a TOML file over the defaults, the rest as
/// `BROKER_*=value` lines of the environment.
pub fn config(data: &[u8]) {
    let (toml, env) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let toml = String::from_utf8_lossy(toml);
    let env: HashMap<String, String> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = Settings::load_from(&toml, env);
}
