//! A generator of synthetic webhook logs in the sample formats, with known injected sensitive values.
