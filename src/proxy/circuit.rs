//! Circuit breakers per backend.
