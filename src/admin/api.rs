//! The admin API's JSON shapes.

#[cfg(test)]
mod tests;
