//! Install-time checks of one guard: its id, kinds and message, then its
//! expression: parsed by `cel`, walked node by node (bounded size, no loops,
//! no floats, allowed functions only, every name a leaf of the view that
//! each of its action kinds has), then run once on a typed sample of the
//! view so a type error (text compared with a number, say) is found now
//! rather than at the first intention.

use std::sync::Arc;

use cel::common::ast::{Expr, LiteralValue};
use cel::IdedExpr;

use super::view;
use super::{
    Guard, GuardProblem, GuardText, EXPR_LEN_MAX, FUNCTIONS, ID_LEN_MAX, MESSAGE_LEN_MAX, NODES_MAX,
};
use crate::vocab::guard::ViewPath;

/// A problem and the column (1-based) it was found at, if known.
type Found = (Option<usize>, GuardProblem);

pub(super) fn compile(t: &GuardText) -> Result<Guard, Found> {
    let id_ok = !t.id.is_empty()
        && t.id.len() <= ID_LEN_MAX
        && t.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !id_ok {
        return Err((None, GuardProblem::BadId(t.id.clone())));
    }
    if t.applies_to.is_empty() {
        return Err((None, GuardProblem::NoKinds));
    }
    if t.message.trim().is_empty() || t.message.len() > MESSAGE_LEN_MAX {
        return Err((None, GuardProblem::BadMessage));
    }
    if t.when.len() > EXPR_LEN_MAX {
        return Err((None, GuardProblem::TooLong));
    }
    shape(&t.when)?;
    let program = parse(&t.when)?;
    let mut walk = Walk {
        program: &program,
        nodes: 0,
        paths: Vec::new(),
    };
    walk.expr(program.expression())?;
    let mut paths = walk.paths;
    paths.sort();
    paths.dedup();
    for kind in &t.applies_to {
        for p in &paths {
            if !view::in_view(*kind, p) {
                let problem = GuardProblem::NotForKind {
                    path: p.to_string(),
                    kind: *kind,
                };
                return Err((None, problem));
            }
        }
    }
    let guard = Guard {
        text: t.clone(),
        program: Arc::new(program),
        paths,
    };
    for kind in &t.applies_to {
        sample_run(&guard, *kind)?;
    }
    Ok(guard)
}

/// Stack for `cel`'s parser: it recurses through the whole precedence
/// chain per level (in a debug build, 20 nested parentheses overflow a
/// 2 MiB thread), so it runs on a thread of its own with this much.
const PARSE_STACK_BYTES: usize = 64 << 20;

/// Parses `when` with `cel`, on a thread with [`PARSE_STACK_BYTES`].
fn parse(when: &str) -> Result<cel::Program, Found> {
    let parsed = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("parley-cel-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(s, || {
                let program = cel::Program::compile(when).map_err(|e| syntax(&e))?;
                // Rejected here, on the big stack, so that nothing deeper is
                // walked, evaluated or dropped on an ordinary thread.
                match depth(program.expression(), 0) {
                    d if d > DEPTH_MAX => Err((None, GuardProblem::TooLarge)),
                    _ => Ok(program),
                }
            })
            .map_err(|e| {
                (
                    None,
                    GuardProblem::Syntax(format!("could not start the parser: {e}")),
                )
            })?;
        worker
            .join()
            .map_err(|_| (None, GuardProblem::Syntax("the parser failed".into())))
    })?;
    parsed
}

/// Deepest nesting of the parsed expression: the evaluator recurses once
/// per level (in a debug build, about 25 KiB of stack each).
const DEPTH_MAX: usize = 32;

/// The depth of `e`, counting no further than a little past [`DEPTH_MAX`].
fn depth(e: &IdedExpr, at: usize) -> usize {
    if at > DEPTH_MAX {
        return at;
    }
    let below = |x: &IdedExpr| depth(x, at + 1);
    match &e.expr {
        Expr::Select(s) => below(&s.operand),
        Expr::Call(c) => c
            .target
            .iter()
            .map(|t| below(t))
            .chain(c.args.iter().map(below))
            .max()
            .unwrap_or(at + 1),
        Expr::List(l) => l.elements.iter().map(below).max().unwrap_or(at + 1),
        Expr::Comprehension(c) => below(&c.iter_range),
        _ => at + 1,
    }
}

fn syntax(e: &cel::ParseErrors) -> Found {
    let first = e.errors.first();
    let column = first
        .and_then(|p| usize::try_from(p.pos.1).ok())
        .filter(|c| *c > 0);
    let msg = first.map_or_else(|| e.to_string(), |p| p.msg.clone());
    (column, GuardProblem::Syntax(msg))
}

/// Most operator, selection and grouping characters in one expression:
/// the parser and the evaluator recurse once per level, so an expression's
/// depth is bounded before it is parsed (`1 + 1 + …` 250 times would
/// otherwise exhaust a thread's stack).
const SHAPE_TOKENS_MAX: usize = 160;
/// Deepest nesting of parentheses and brackets.
const NESTING_MAX: usize = 24;

/// Checks the expression's size by its characters, outside string literals.
fn shape(when: &str) -> Result<(), Found> {
    let (mut tokens, mut depth, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for (i, c) in when.chars().enumerate() {
        if let Some(q) = quote {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, c) if c == q => quote = None,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' => {
                depth += 1;
                tokens += 1;
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '=' | '!' | '&' | '|' | '?' | ':' | '.'
            | ',' => tokens += 1,
            _ => {}
        }
        if tokens > SHAPE_TOKENS_MAX || depth > NESTING_MAX {
            return Err((Some(i + 1), GuardProblem::TooLarge));
        }
    }
    Ok(())
}

/// Most generic facts whose types the install-time check tries in every
/// combination (3 types each); beyond it, every fact gets one type at a time.
const FACT_COMBINATIONS_MAX: usize = 4;

/// Runs the guard on samples of the view for `kind` (every leaf present,
/// typed as the view types it; a generic fact may hold a number, text or a
/// boolean, so those are tried): when no sample runs, the error of the
/// first is a type error in the expression. An arithmetic error (overflow,
/// division by zero) is not: it depends on the values.
fn sample_run(guard: &Guard, kind: crate::vocab::ActionKind) -> Result<(), Found> {
    use crate::value::Value;
    let facts: Vec<usize> = (0..guard.paths.len())
        .filter(|i| matches!(guard.paths[*i].leaf, crate::vocab::guard::Leaf::Fact(_)))
        .collect();
    let types = [Value::Int(1), Value::Text("x".into()), Value::Bool(false)];
    let combinations: Vec<Vec<usize>> = if facts.len() <= FACT_COMBINATIONS_MAX {
        (0..3usize.pow(facts.len() as u32))
            .map(|mut n| {
                (0..facts.len())
                    .map(|_| {
                        let t = n % 3;
                        n /= 3;
                        t
                    })
                    .collect()
            })
            .collect()
    } else {
        (0..3).map(|t| vec![t; facts.len()]).collect()
    };
    let mut first_error = None;
    for combo in combinations {
        let values = guard
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let v = match facts.iter().position(|f| *f == i) {
                    Some(k) => types[combo[k]].clone(),
                    None => view::sample(kind, p),
                };
                (p.clone(), v)
            })
            .collect();
        match sample_error(super::eval::run(guard, values), kind) {
            None => return Ok(()),
            Some(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err((
        None,
        first_error.unwrap_or(GuardProblem::Type("no sample of the view runs".into())),
    ))
}

/// The type error a sample run shows, if any.
fn sample_error(r: cel::ResolveResult, kind: crate::vocab::ActionKind) -> Option<GuardProblem> {
    match r {
        Ok(cel::Value::Bool(_)) => None,
        Ok(other) => Some(GuardProblem::Type(format!(
            "the expression gives {}, not true or false",
            type_name(&other)
        ))),
        Err(e) => {
            let text = e.to_string();
            let arithmetic = ["overflow", "divide", "division", "modulus", "zero"]
                .iter()
                .any(|w| text.to_ascii_lowercase().contains(w));
            (!arithmetic).then(|| GuardProblem::Type(format!("for `{kind}` actions: {text}")))
        }
    }
}

fn type_name(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::Int(_) | cel::Value::UInt(_) => "a number",
        cel::Value::String(_) => "text",
        cel::Value::Null => "null",
        cel::Value::List(_) => "a list",
        cel::Value::Map(_) => "a map",
        _ => "a value",
    }
}

struct Walk<'a> {
    program: &'a cel::Program,
    nodes: usize,
    paths: Vec<ViewPath>,
}

impl Walk<'_> {
    fn column(&self, id: u64) -> Option<usize> {
        self.program
            .source_info()
            .offset_for(id)
            .and_then(|(start, _)| usize::try_from(start).ok())
            .map(|s| s + 1)
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<(), Found> {
        self.nodes += 1;
        let at = self.column(e.id);
        if self.nodes > NODES_MAX {
            return Err((at, GuardProblem::TooLarge));
        }
        match &e.expr {
            Expr::Unspecified => Err((at, GuardProblem::Syntax("an empty expression".into()))),
            Expr::Literal(l) => literal(l).map_err(|p| (at, p)),
            Expr::Ident(_) | Expr::Select(_) => {
                // A chain is reported where it starts (`sku` of `sku.nope`).
                let mut root = e;
                while let Expr::Select(s) = &root.expr {
                    root = &s.operand;
                }
                let at = self.column(root.id).or(at);
                let path = self.path(e).map_err(|p| (at, p))?;
                self.paths.push(path);
                Ok(())
            }
            Expr::Call(c) => {
                if !FUNCTIONS.contains(&c.func_name.as_str()) {
                    let allowed = "size, contains, startsWith, endsWith and the operators";
                    return Err((
                        at,
                        GuardProblem::Function(c.func_name.clone(), allowed.into()),
                    ));
                }
                if let Some(t) = &c.target {
                    self.expr(t)?;
                }
                c.args.iter().try_for_each(|a| self.expr(a))
            }
            Expr::List(l) => l.elements.iter().try_for_each(|x| self.expr(x)),
            Expr::Comprehension(c) => Err((
                at,
                GuardProblem::Loop(format!("a loop over `{}`", c.iter_var)),
            )),
            Expr::Map(_) | Expr::Struct(_) => {
                Err((at, GuardProblem::Literal("a map or message literal")))
            }
        }
    }

    /// The leaf a name or a chain of selections stands for.
    fn path(&self, e: &IdedExpr) -> Result<ViewPath, GuardProblem> {
        let mut names = Vec::new();
        let mut cur = e;
        loop {
            match &cur.expr {
                Expr::Select(s) => {
                    names.push(s.field.as_str());
                    cur = &s.operand;
                }
                Expr::Ident(n) => {
                    names.push(n.as_str());
                    break;
                }
                _ => {
                    return Err(GuardProblem::Literal(
                        "a field of something other than the view",
                    ))
                }
            }
            if names.len() > 3 {
                return Err(GuardProblem::UnknownName(
                    names.iter().rev().copied().collect::<Vec<_>>().join("."),
                    view::roots_list(),
                ));
            }
        }
        names.reverse();
        view::parse_path(&names)
    }
}

fn literal(l: &LiteralValue) -> Result<(), GuardProblem> {
    match l {
        LiteralValue::Double(_) => Err(GuardProblem::Float),
        LiteralValue::UInt(_) => Err(GuardProblem::Literal("an unsigned literal (`1u`)")),
        LiteralValue::Bytes(_) => Err(GuardProblem::Literal("a bytes literal")),
        LiteralValue::Boolean(_)
        | LiteralValue::Int(_)
        | LiteralValue::Null
        | LiteralValue::String(_) => Ok(()),
    }
}
