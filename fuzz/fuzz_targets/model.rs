//! Differential fuzzing: every operation runs on cancel-core and on the
//! reference model (tests/model/mod.rs); any difference, panic or leak is a
//! finding.
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

#[global_allocator]
static GLOBAL: model::Counting = model::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| model::run(data));
