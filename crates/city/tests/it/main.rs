//! The city loader's integration tests: the Brașov demo folder loads as documented, and a table of
//! broken copies of it, one mistake each, is refused with an error naming the file, the entry and
//! the problem.

mod brasov;
mod broken;
mod fixture;
mod texts;
