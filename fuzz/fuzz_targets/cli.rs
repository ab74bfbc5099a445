#![no_main]

// Each target calls one of the shared entry points.
#[allow(dead_code)]
#[path = "../inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| inputs::cli(data));
