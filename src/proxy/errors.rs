//! Errors in the client's own API shape.
