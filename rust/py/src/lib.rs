//! PyO3 glue (being written).
