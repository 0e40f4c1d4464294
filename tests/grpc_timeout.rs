//! Issue 16: gRPC's `grpc-timeout` values (`time::grpc`), as property
//! tests: random strings and bytes never panic the decoder, whatever
//! decodes re-encodes to the same duration, and any duration encodes to a
//! valid value that decodes to no less than it and less than one unit more.

use core::time::Duration;

use cancel_core::time::grpc::{GrpcTimeoutError, decode, encode};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// The length of a unit, in nanoseconds.
fn unit_nanos(unit: u8) -> u64 {
    match unit {
        b'n' => 1,
        b'u' => 1_000,
        b'm' => 1_000_000,
        b'S' => 1_000_000_000,
        b'M' => 60_000_000_000,
        b'H' => 3_600_000_000_000,
        other => panic!("not a unit: {other}"),
    }
}

/// Property: random bytes never panic; whatever decodes re-encodes to a
/// value that decodes to the same duration.
#[test]
fn random_bytes_decode_or_fail_cleanly_and_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"0123456789HMSmun x.-+";
    let rounds = if cfg!(miri) { 500 } else { 200_000 };
    let mut decoded = 0;
    for i in 0..rounds {
        let len = (rng.next() % 12) as usize;
        let mut buf = [0u8; 12];
        for (j, b) in buf[..len].iter_mut().enumerate() {
            let r = rng.next();
            // A third shaped like a value (digits, then a unit letter
            // or a stray byte), a third from the header's alphabet, a
            // third any byte.
            *b = match i % 3 {
                0 if j + 1 < len => b'0' + (r % 10) as u8,
                0 => alphabet[10 + (r % (alphabet.len() as u64 - 10)) as usize],
                1 => alphabet[(r % alphabet.len() as u64) as usize],
                _ => r as u8,
            };
        }
        if let Ok(d) = decode(&buf[..len]) {
            decoded += 1;
            assert_eq!(
                decode(encode(d).as_str().as_bytes()),
                Ok(d),
                "{:?}",
                &buf[..len]
            );
        }
    }
    assert!(
        decoded > rounds / 20,
        "the shaped third decodes often: {decoded}"
    );
}

/// Property: any duration encodes to a valid value of at most 8 digits,
/// which decodes to no less than it and less than one unit more.
#[test]
fn random_durations_round_trip_within_one_unit() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let rounds = if cfg!(miri) { 500 } else { 200_000 };
    for _ in 0..rounds {
        // Spread over every unit's range: 0 ns to 2^(shift) ns.
        let shift = rng.next() % 70;
        let nanos = u128::from(rng.next()) >> (64 - shift.min(64));
        let d = Duration::from_nanos(nanos as u64);
        let value = encode(d);
        let back = decode(value.as_str().as_bytes()).unwrap();
        assert!(back >= d, "{d:?} -> {value} -> {back:?}");
        let unit = unit_nanos(*value.as_str().as_bytes().last().unwrap());
        assert!(back - d < Duration::from_nanos(unit), "{d:?} -> {value}");
        assert!(value.as_str().len() <= 9);
    }
}

#[test]
fn every_unit_and_the_edges() {
    for (text, d) in [
        ("1H", Duration::from_secs(3600)),
        ("1M", Duration::from_secs(60)),
        ("1S", Duration::from_secs(1)),
        ("1m", Duration::from_millis(1)),
        ("1u", Duration::from_micros(1)),
        ("1n", Duration::from_nanos(1)),
        ("0S", Duration::ZERO),
        ("99999999H", Duration::from_secs(99_999_999 * 3600)),
    ] {
        assert_eq!(decode(text.as_bytes()), Ok(d), "{text}");
    }
    assert_eq!(decode(b""), Err(GrpcTimeoutError::NoDigits));
    assert_eq!(decode(b"5"), Err(GrpcTimeoutError::UnknownUnit));
    assert_eq!(decode(b"5\xff"), Err(GrpcTimeoutError::UnknownUnit));
    assert_eq!(decode(b"\xff5S"), Err(GrpcTimeoutError::NotADigit));
    assert_eq!(decode(b"-5S"), Err(GrpcTimeoutError::NotADigit));
    assert_eq!(encode(Duration::from_secs(1)).as_str(), "1000000u");
    assert_eq!(encode(Duration::from_secs(100_000)).as_str(), "100000S");
    assert_eq!(
        encode(Duration::from_secs(100_000_000 * 60)).as_str(),
        "1666667H"
    );
}
