//! cargo fuzz run config (see docs/reliability.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| support_broker::fuzzing::config(data));
