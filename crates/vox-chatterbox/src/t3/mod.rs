//! T3: text tokens → speech tokens (reference: `chatterbox/models/t3`).
