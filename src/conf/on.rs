//! `start on` / `stop on` expressions in job-file syntax, read with
//! Upstart's operator-stack algorithm (`parse_on*` in `init/parse_job.c`),
//! so that errors are the ones Upstart gives, at the same places.
//!
//! Tokens are split at blanks and parentheses; `and` / `or` are operators
//! only when written bare (a quoted `"and"` is a word). Inside parentheses
//! the expression may go on over several lines, each with its own comment.

use super::error::{ErrorKind, ParseError};
use super::lexer::{Lexer, Result, PCNLWS};
use crate::event::{EventExpr, EventMatch};

/// Nesting deeper than this is refused (a tree this deep is no real job's).
pub const MAX_DEPTH: usize = 64;
/// More operands than this in one expression are refused.
pub const MAX_EVENTS: usize = 1024;

enum Item {
    /// An open parenthesis: collection stops here.
    Group,
    /// An event being read; later words are its arguments.
    Match(EventMatch),
    /// An operator with its left operand, waiting for its right one.
    Op(Op, EventExpr),
}

#[derive(Clone, Copy)]
enum Op {
    And,
    Or,
}

/// Folds the stack down to the innermost open group into `root`.
fn collect(
    stack: &mut Vec<Item>,
    root: &mut Option<EventExpr>,
) -> std::result::Result<(), ErrorKind> {
    while let Some(top) = stack.last() {
        if matches!(top, Item::Group) {
            break;
        }
        match stack.pop() {
            Some(Item::Op(op, left)) => {
                let right = root.take().ok_or(ErrorKind::ExpectedEvent)?;
                let (l, r) = (Box::new(left), Box::new(right));
                *root = Some(match op {
                    Op::And => EventExpr::And(l, r),
                    Op::Or => EventExpr::Or(l, r),
                });
            }
            Some(Item::Match(m)) => {
                if root.is_some() {
                    return Err(ErrorKind::ExpectedOperator);
                }
                *root = Some(EventExpr::Match(m));
            }
            Some(Item::Group) | None => unreachable!("checked above"),
        }
    }
    if root.is_none() {
        return Err(ErrorKind::ExpectedEvent);
    }
    Ok(())
}

/// Reads an expression from the lexer's position (just after `on`) to the
/// end of the stanza.
pub fn parse_on(lx: &mut Lexer) -> Result<EventExpr> {
    let mut stack: Vec<Item> = Vec::new();
    let mut root: Option<EventExpr> = None;
    let mut depth: usize = 0;
    let mut events: usize = 0;
    let mut last;
    let at = |pos: usize| move |kind: ErrorKind| ParseError::new(pos, kind);

    loop {
        lx.skip_ws_and_continuations();
        loop {
            last = lx.pos;
            match lx.peek() {
                Some(b'(') => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(lx.err(ErrorKind::TooDeep { limit: MAX_DEPTH }));
                    }
                    if root.is_some() || matches!(stack.last(), Some(Item::Match(_))) {
                        return Err(lx.err(ErrorKind::ExpectedOperator));
                    }
                    stack.push(Item::Group);
                    lx.pos += 1;
                    lx.skip_ws_and_continuations();
                }
                Some(b')') => {
                    depth = depth.saturating_sub(1);
                    collect(&mut stack, &mut root).map_err(at(last))?;
                    if stack.pop().is_none() {
                        return Err(lx.err(ErrorKind::MismatchedParens));
                    }
                    lx.pos += 1;
                    lx.skip_ws_and_continuations();
                }
                _ => {
                    let save = lx.pos;
                    let raw = lx.next_token(PCNLWS, false)?;
                    let op = match raw.text.as_str() {
                        "and" => Some(Op::And),
                        "or" => Some(Op::Or),
                        _ => None,
                    };
                    if let Some(op) = op {
                        collect(&mut stack, &mut root).map_err(at(raw.start))?;
                        let left = root.take().expect("collect leaves a root");
                        stack.push(Item::Op(op, left));
                    } else {
                        lx.pos = save;
                        let word = lx.next_token(PCNLWS, true)?;
                        match stack.last_mut() {
                            Some(Item::Match(m)) => {
                                // Positional arguments must come first.
                                if !word.text.contains('=')
                                    && m.args.iter().any(|a| a.contains('='))
                                {
                                    return Err(ParseError::new(
                                        word.start,
                                        ErrorKind::ExpectedVariable,
                                    ));
                                }
                                m.args.push(word.text);
                            }
                            _ => {
                                events += 1;
                                if events > MAX_EVENTS {
                                    return Err(ParseError::new(
                                        word.start,
                                        ErrorKind::TooManyEvents { limit: MAX_EVENTS },
                                    ));
                                }
                                stack.push(Item::Match(EventMatch {
                                    name: word.text,
                                    args: Vec::new(),
                                }));
                            }
                        }
                    }
                }
            }
            if !lx.has_token() {
                break;
            }
        }
        // Only a comment or the end of the line can be here.
        lx.next_line();
        if lx.at_end() || depth == 0 {
            break;
        }
    }
    collect(&mut stack, &mut root).map_err(at(last))?;
    if !stack.is_empty() {
        return Err(lx.err(ErrorKind::MismatchedParens));
    }
    Ok(root.expect("collect leaves a root"))
}
