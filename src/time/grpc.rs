//! gRPC's `grpc-timeout` header value: 1 to 8 ASCII digits, then one unit:
//! `H` (hours), `M` (minutes), `S` (seconds), `m` (milliseconds), `u`
//! (microseconds) or `n` (nanoseconds). The way a deadline crosses the
//! wire: the caller sends the time remaining, the server starts its own
//! deadline from it.
//!
//! ```
//! use std::time::Duration;
//! use cancel_core::time::grpc;
//!
//! assert_eq!(grpc::decode(b"150m"), Ok(Duration::from_millis(150)));
//! assert_eq!(grpc::encode(Duration::from_millis(150)).as_str(), "150000u");
//! assert!(grpc::decode(b"1.5S").is_err());
//! ```

use core::fmt;
use core::time::Duration;

/// The largest value: 8 digits.
const MAX_VALUE: u64 = 99_999_999;

/// The units, finest first, with their length in nanoseconds.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60_000_000_000),
    (b'H', 3_600_000_000_000),
];

/// An encoded `grpc-timeout` value: at most 9 ASCII bytes, kept inline (no
/// allocation). [`as_str`](Self::as_str) or `Display` gives the text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcTimeout {
    bytes: [u8; 9],
    len: u8,
}

impl GrpcTimeout {
    /// The header value's text.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::time::grpc;
    /// assert_eq!(grpc::encode(Duration::from_secs(3600 * 200_000)).as_str(), "12000000M");
    /// ```
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and unit letters are ever written.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("0n")
    }

    /// The duration the value stands for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::time::grpc;
    /// let value = grpc::encode(Duration::from_nanos(1_234_567_890_123));
    /// assert_eq!(value.as_str(), "1234568m");
    /// assert_eq!(value.duration(), Duration::from_millis(1_234_568), "rounded up");
    /// ```
    pub fn duration(&self) -> Duration {
        // Always decodable: made by `encode`.
        decode(self.as_str().as_bytes()).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for GrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for GrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrpcTimeout({:?})", self.as_str())
    }
}

/// Encodes `timeout` in the finest unit whose value fits 8 digits, rounded
/// up to that unit (a deadline sent on must not shrink below what the
/// caller asked by more than nothing, nor end before it: as grpc-go does).
/// A timeout beyond 99,999,999 hours (about 11,400 years) is sent as that.
///
/// ```
/// use std::time::Duration;
/// use cancel_core::time::grpc::encode;
/// assert_eq!(encode(Duration::ZERO).as_str(), "0n");
/// assert_eq!(encode(Duration::from_nanos(99_999_999)).as_str(), "99999999n");
/// assert_eq!(encode(Duration::from_nanos(100_000_001)).as_str(), "100001u");
/// assert_eq!(encode(Duration::from_secs(30)).as_str(), "30000000u");
/// assert_eq!(encode(Duration::MAX).as_str(), "99999999H");
/// ```
pub fn encode(timeout: Duration) -> GrpcTimeout {
    let nanos = timeout.as_nanos();
    let (unit, value) = UNITS
        .iter()
        .find_map(|&(unit, len)| {
            let value = nanos.div_ceil(u128::from(len));
            (value <= u128::from(MAX_VALUE)).then_some((unit, value as u64))
        })
        .unwrap_or((b'H', MAX_VALUE));
    let mut digits = [0u8; 8];
    let mut n = 0;
    let mut v = value;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut bytes = [0u8; 9];
    for (i, d) in digits[..n].iter().rev().enumerate() {
        bytes[i] = *d;
    }
    bytes[n] = unit;
    GrpcTimeout {
        bytes,
        len: (n + 1) as u8,
    }
}

/// Why a `grpc-timeout` value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrpcTimeoutError {
    /// The value is empty, or a unit with no digits before it.
    NoDigits,
    /// More than 8 digits.
    TooManyDigits,
    /// A byte that is not an ASCII digit where digits go.
    NotADigit,
    /// The last byte is not one of `H`, `M`, `S`, `m`, `u`, `n`.
    UnknownUnit,
}

impl fmt::Display for GrpcTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrpcTimeoutError::NoDigits => "grpc-timeout: no digits before the unit",
            GrpcTimeoutError::TooManyDigits => "grpc-timeout: more than 8 digits",
            GrpcTimeoutError::NotADigit => "grpc-timeout: a value byte is not an ASCII digit",
            GrpcTimeoutError::UnknownUnit => {
                "grpc-timeout: the unit is not one of H, M, S, m, u, n"
            }
        })
    }
}

impl core::error::Error for GrpcTimeoutError {}

/// Decodes a `grpc-timeout` header value (its bytes: a header value need
/// not be UTF-8). Never panics: anything but 1 to 8 ASCII digits followed
/// by one unit is a [`GrpcTimeoutError`].
///
/// ```
/// use std::time::Duration;
/// use cancel_core::time::grpc::{decode, GrpcTimeoutError};
/// assert_eq!(decode(b"2H"), Ok(Duration::from_secs(7200)));
/// assert_eq!(decode(b"00000001n"), Ok(Duration::from_nanos(1)));
/// assert_eq!(decode(b"123456789S"), Err(GrpcTimeoutError::TooManyDigits));
/// assert_eq!(decode(b"5s"), Err(GrpcTimeoutError::UnknownUnit));
/// assert_eq!(decode(b"S"), Err(GrpcTimeoutError::NoDigits));
/// assert_eq!(decode(b" 5S"), Err(GrpcTimeoutError::NotADigit));
/// ```
pub fn decode(value: &[u8]) -> Result<Duration, GrpcTimeoutError> {
    let Some((&unit, digits)) = value.split_last() else {
        return Err(GrpcTimeoutError::NoDigits);
    };
    let len = UNITS
        .iter()
        .find_map(|&(u, len)| (u == unit).then_some(len))
        .ok_or(GrpcTimeoutError::UnknownUnit)?;
    if digits.is_empty() {
        return Err(GrpcTimeoutError::NoDigits);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(GrpcTimeoutError::NotADigit);
    }
    if digits.len() > 8 {
        return Err(GrpcTimeoutError::TooManyDigits);
    }
    let value = digits
        .iter()
        .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    // At most 99,999,999 hours: 3.6e20 ns overflows u64, so by parts.
    Ok(Duration::from_secs(value * (len / 1_000_000_000))
        + Duration::from_nanos(value * (len % 1_000_000_000)))
}
