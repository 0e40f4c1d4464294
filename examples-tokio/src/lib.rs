//! Examples only: see `examples/`. A package needs a library or binary
//! target, so this one is empty.
