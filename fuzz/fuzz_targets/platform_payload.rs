#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::platform_payload(data));
