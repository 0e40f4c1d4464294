//! The differential model check without nightly: replays the committed
//! corpus (every input the fuzzer found interesting or crashing, minimised)
//! and a few thousand seeded random inputs through the interpreter that runs
//! each operation on cancel-core and on the reference model.

#[path = "model/mod.rs"]
mod model;

#[global_allocator]
static GLOBAL: model::Counting = model::Counting;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Replays the committed corpus. To replay one input with a trace of its
/// operations instead (a debugging aid):
/// `MODEL_INPUT=path cargo test --test model_replay committed -- --nocapture`.
#[test]
fn committed_corpus_replays_clean() {
    if let Ok(path) = std::env::var("MODEL_INPUT") {
        let data = std::fs::read(path).expect("MODEL_INPUT names an input file");
        model::TRACE.store(true, std::sync::atomic::Ordering::Relaxed);
        model::run(&data);
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/model");
    // Under Miri, whose file-system shims make listing 1,000 files take
    // minutes, two committed seeds stand for the corpus.
    let mut files: Vec<_> = if cfg!(miri) {
        let dir = std::path::Path::new(dir);
        vec![dir.join("seed-basic"), dir.join("seed-shutdown")]
    } else {
        std::fs::read_dir(dir)
            .expect("the corpus directory exists")
            .map(|e| e.unwrap().path())
            .collect()
    };
    // Under Miri (far slower) only the first few, and at most their first
    // 256 bytes each.
    files.sort();
    assert!(!files.is_empty(), "the corpus is committed");
    for path in files.iter().take(if cfg!(miri) { 5 } else { usize::MAX }) {
        let mut data = std::fs::read(path).unwrap();
        if cfg!(miri) {
            data.truncate(256);
        }
        let result = std::panic::catch_unwind(|| model::run(&data));
        assert!(result.is_ok(), "corpus input {} failed", path.display());
    }
}

#[test]
fn seeded_random_inputs_agree_with_the_model() {
    let cases = if cfg!(miri) { 10 } else { 4_000 };
    for seed in 1..=cases as u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let len = 16 + (rng.next() % 512) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let result = std::panic::catch_unwind(|| model::run(&data));
        assert!(result.is_ok(), "seed {seed} failed: input {data:?}");
    }
}

/// Random inputs in which about one byte in four is a shutdown scope's
/// operation (op 26, any variant): uniform bytes make them one in 256 each,
/// too rare for nested scopes, guards and shutdowns to meet.
#[test]
fn seeded_random_scope_inputs_agree_with_the_model() {
    let cases = if cfg!(miri) { 10 } else { 2_000 };
    for seed in 1..=cases as u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let len = 16 + (rng.next() % 384) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                let x = rng.next();
                if x % 4 == 0 {
                    26 + 32 * ((x >> 8) % 8) as u8
                } else {
                    (x >> 16) as u8
                }
            })
            .collect();
        let result = std::panic::catch_unwind(|| model::run(&data));
        assert!(result.is_ok(), "seed {seed} failed: input {data:?}");
    }
}

/// Random inputs in which about one byte in three is a timer's operation:
/// advance (14), `cancel_after` on a clock (15) or a source (22),
/// `with_timeout` (23), or one of the operations numbered from 32 (on the
/// variants 4..=7 of ops 19 and 31: `disarm`, `try_reset`,
/// `cancel_after_with` on a clock's timer or a source), so that timeouts
/// with causes, disarms and resets meet armed timers, links and drains.
#[test]
fn seeded_random_timer_inputs_agree_with_the_model() {
    let cases = if cfg!(miri) { 10 } else { 2_000 };
    for seed in 1..=cases as u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA24B_AED4_963E_E407));
        let len = 16 + (rng.next() % 384) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                let x = rng.next();
                let variant = ((x >> 8) % 8) as u8;
                match x % 12 {
                    0 => [14, 15, 22, 23][((x >> 16) % 4) as usize] + 32 * variant,
                    1 | 2 => [19, 31][((x >> 16) % 2) as usize] + 32 * (4 + variant % 4),
                    _ => (x >> 24) as u8,
                }
            })
            .collect();
        let result = std::panic::catch_unwind(|| model::run(&data));
        assert!(result.is_ok(), "seed {seed} failed: input {data:?}");
    }
}
