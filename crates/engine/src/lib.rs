//! The dispatcher engine: fusion, routing and the single writer of incident state.
