#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::http_body(data));
