//! cargo fuzz run csv_import (see docs/reliability.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| support_broker::fuzzing::csv_import(data));
