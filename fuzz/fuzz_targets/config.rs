#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iks_gateway::fuzzing::config(data));
