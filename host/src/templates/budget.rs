//! What a template may do, and what one render may cost.
//!
//! Templates are edited over the API and rendered with callers' variables,
//! so neither may make a render run forever or build megabytes. minijinja
//! stops nothing of the kind by itself: `{% for %}` over `range()` nests
//! into billions of steps, and `"x" * 99999999`, or a string doubled with
//! `~` in a `{% set %}` loop, builds a hundred megabytes in one step,
//! before any output. So a chirp template is checked when it is saved
//! ([`check`]): it is text with `{{ expressions }}` and `{% if %}` blocks,
//! whose expressions use its variables, literals, comparisons, `and`, `or`,
//! `not`, `+ - / // %`, `~`, slices, tests and the size-keeping filters of
//! [`FILTERS`]; no loops, assignments, macros, calls, includes, `*` or `**`.
//! Such a template runs in time and space linear in its text and its
//! variables, and [`check`] counts how often it reads a variable, so that a
//! render whose variables could make it build more than [`MAX_WORK_BYTES`]
//! is refused before it starts ([`Budget::admit`]). minijinja's fuel and a
//! cap on the output ([`MAX_RENDERED_BYTES`]) stop anything that gets past
//! both. A render is a few microseconds to a millisecond of CPU, so it runs
//! on the request's task.

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;

/// The longest text of one language, in bytes (WhatsApp's own limit is
/// 4,096 characters of free text, 1,024 in a template's body).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// The longest rendered text.
pub const MAX_RENDERED_BYTES: usize = 16 * 1024;
/// The most a render may build, counting every read of a variable at its
/// largest.
pub const MAX_WORK_BYTES: usize = 64 * 1024;
/// minijinja instructions one render may execute.
pub const FUEL: u64 = 50_000;
/// How much a filter may grow a value (case mapping changes the length of
/// a few characters, at most threefold in UTF-8).
const GROWTH: usize = 3;

/// Filters that keep a value about its size (or shrink it).
pub const FILTERS: [&str; 14] = [
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "default",
    "d",
    "round",
    "int",
    "float",
    "abs",
    "length",
    "count",
    "string",
];

/// What [`check`] learned of a text: how often it reads a variable, and
/// how many bytes it writes of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// How many times the text reads a variable.
    pub variable_reads: usize,
    /// The bytes the text writes of its own.
    pub own_bytes: usize,
}

/// Why a text is not a chirp template, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The line of the text, if the problem is on one.
    pub line: Option<usize>,
    /// What is not allowed.
    pub reason: String,
}

/// Checks that `text` uses only what chirp templates may, and learns its
/// shape.
pub fn check(text: &str) -> Result<Shape, Refusal> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Refusal {
            line: None,
            reason: format!("{} bytes; a text may have {MAX_TEXT_BYTES}", text.len()),
        });
    }
    let tree = parse(text, "template", SyntaxConfig, WhitespaceConfig::default()).map_err(|e| {
        Refusal {
            line: e.line(),
            reason: e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        }
    })?;
    let mut shape = Shape {
        variable_reads: 0,
        own_bytes: text.len(),
    };
    statement(&tree, &mut shape)?;
    Ok(shape)
}

fn refuse(span: Span, what: &str) -> Refusal {
    Refusal {
        line: Some(usize::from(span.start_line)),
        reason: format!(
            "uses {what}, which chirp templates may not (no loops, assignments, macros, \
             calls, includes, * or **; filters: {})",
            FILTERS.join(", ")
        ),
    }
}

fn statement(stmt: &Stmt<'_>, shape: &mut Shape) -> Result<(), Refusal> {
    match stmt {
        Stmt::Template(t) => t.children.iter().try_for_each(|s| statement(s, shape)),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::EmitExpr(e) => expression(&e.expr, shape),
        Stmt::IfCond(c) => {
            expression(&c.expr, shape)?;
            c.true_body
                .iter()
                .chain(&c.false_body)
                .try_for_each(|s| statement(s, shape))
        }
        Stmt::ForLoop(s) => Err(refuse(s.span(), "{% for %}")),
        Stmt::Set(s) => Err(refuse(s.span(), "{% set %}")),
        Stmt::SetBlock(s) => Err(refuse(s.span(), "{% set %}")),
        Stmt::Macro(s) => Err(refuse(s.span(), "{% macro %}")),
        Stmt::CallBlock(s) => Err(refuse(s.span(), "{% call %}")),
        Stmt::Include(s) => Err(refuse(s.span(), "{% include %}")),
        Stmt::Extends(s) => Err(refuse(s.span(), "{% extends %}")),
        Stmt::Import(s) => Err(refuse(s.span(), "{% import %}")),
        Stmt::FromImport(s) => Err(refuse(s.span(), "{% from %}")),
        Stmt::Block(s) => Err(refuse(s.span(), "{% block %}")),
        Stmt::WithBlock(s) => Err(refuse(s.span(), "{% with %}")),
        Stmt::AutoEscape(s) => Err(refuse(s.span(), "{% autoescape %}")),
        Stmt::FilterBlock(s) => Err(refuse(s.span(), "{% filter %}")),
        Stmt::Do(s) => Err(refuse(s.span(), "{% do %}")),
    }
}

fn all<'e, 'a: 'e>(
    exprs: impl IntoIterator<Item = &'e Expr<'a>>,
    shape: &mut Shape,
) -> Result<(), Refusal> {
    exprs.into_iter().try_for_each(|e| expression(e, shape))
}

fn expression(expr: &Expr<'_>, shape: &mut Shape) -> Result<(), Refusal> {
    match expr {
        Expr::Var(_) => {
            shape.variable_reads += 1;
            Ok(())
        }
        Expr::Const(_) => Ok(()),
        Expr::UnaryOp(u) => expression(&u.expr, shape),
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::Mul => Err(refuse(b.span(), "*")),
            ast::BinOpKind::Pow => Err(refuse(b.span(), "**")),
            _ => all([&b.left, &b.right], shape),
        },
        Expr::Compare(c) => {
            expression(&c.expr, shape)?;
            all(c.ops.iter().map(|op| &op.expr), shape)
        }
        Expr::IfExpr(i) => all(
            [&i.test_expr, &i.true_expr]
                .into_iter()
                .chain(i.false_expr.as_ref()),
            shape,
        ),
        Expr::Slice(s) => all(
            std::iter::once(&s.expr).chain(
                [&s.start, &s.stop, &s.step]
                    .into_iter()
                    .filter_map(Option::as_ref),
            ),
            shape,
        ),
        Expr::GetItem(g) => all([&g.expr, &g.subscript_expr], shape),
        Expr::Filter(f) => {
            if !FILTERS.contains(&f.name) {
                return Err(refuse(f.span(), &format!("the filter {}", f.name)));
            }
            all(f.expr.iter().chain(arguments(&f.args, f.span())?), shape)
        }
        Expr::Test(t) => {
            expression(&t.expr, shape)?;
            all(arguments(&t.args, t.span())?, shape)
        }
        Expr::GetAttr(g) => Err(refuse(g.span(), "attributes")),
        Expr::Call(c) => Err(refuse(c.span(), "a call")),
        Expr::List(l) => Err(refuse(l.span(), "a list")),
        Expr::Map(m) => Err(refuse(m.span(), "a map")),
    }
}

/// The expressions of a filter's or test's arguments (no splats).
fn arguments<'e, 'a>(
    args: &'e [CallArg<'a>],
    span: Span,
) -> Result<impl Iterator<Item = &'e Expr<'a>>, Refusal> {
    args.iter()
        .map(|arg| match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) => Ok(e),
            CallArg::PosSplat(_) | CallArg::KwargSplat(_) => Err(refuse(span, "*args")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Vec::into_iter)
}

/// The cost of one render of a text of this shape with these variables.
#[derive(Debug, Clone, Copy)]
pub struct Budget;

impl Budget {
    /// Whether a text of `shape` may be rendered with variables whose
    /// longest is `longest_variable` bytes: at most [`MAX_WORK_BYTES`]
    /// built, counting every read at its largest.
    pub fn admit(shape: Shape, longest_variable: usize) -> Result<(), String> {
        let work = shape
            .variable_reads
            .saturating_mul(longest_variable.saturating_mul(GROWTH))
            .saturating_add(shape.own_bytes);
        if work > MAX_WORK_BYTES {
            return Err(format!(
                "the template reads its variables {} times; with a variable of {} bytes it \
                 could build {work} bytes, more than the {MAX_WORK_BYTES} a render may",
                shape.variable_reads, longest_variable
            ));
        }
        Ok(())
    }
}

/// A writer that takes at most [`MAX_RENDERED_BYTES`]; past that, writing
/// fails and the render stops.
#[derive(Default)]
pub struct CappedOutput {
    /// What was written, up to the cap.
    pub text: String,
    /// Whether more was cut.
    pub overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered text is too long"));
        }
        // minijinja writes whole UTF-8 strings, never parts of a character.
        let text = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.text.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_texts_pass_and_their_variable_reads_are_counted() {
        for (text, reads) in [
            ("Order #{{ order_id }} on {{ delivery_date }}.", 2),
            (
                "{% if amount > 1000 %}Big{% else %}Small{% endif %} {{ name|upper|default('x') }}",
                2,
            ),
            (
                "{{ a ~ ' ' ~ b[:10] }} {{ 'yes' if c is defined else 'no' }}",
                3,
            ),
            ("plain text, no variables", 0),
        ] {
            assert_eq!(check(text).map(|s| s.variable_reads), Ok(reads), "{text}");
        }
    }

    /// Each of these builds gigabytes or runs for hours in minijinja as it
    /// comes; each is refused, with its line.
    #[test]
    fn what_could_run_forever_or_build_megabytes_is_refused_at_its_line() {
        for text in [
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            "{% set x = 'ab' %}{% set x = x ~ x %}{{ x }}",
            "{{ 'x' * 99999999 }}",
            "{{ 2 ** 100000 }}",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            "{{ lipsum(1000000) }}",
            "{{ name|replace('a', 'aaaaaaaaaaaaaaaa') }}",
            "{% include 'other' %}",
            "{{ [1, 2] }}",
            "{{ name.upper() }}",
            "line one\n{{ range(10)|list }}",
        ] {
            let refusal = check(text).expect_err(text);
            assert!(refusal.line.is_some(), "{text}: {refusal:?}");
        }
        assert_eq!(
            check("a\nb\n{% for x in y %}{% endfor %}")
                .unwrap_err()
                .line,
            Some(3)
        );
        assert!(check(&"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
    }

    #[test]
    fn a_render_that_could_build_too_much_is_refused_before_it_starts() {
        let shape = check(&"{{ a }}".repeat(100)).unwrap();
        assert!(Budget::admit(shape, 20).is_ok());
        assert!(Budget::admit(shape, 1_000).is_err());
    }

    #[test]
    fn the_output_is_capped() {
        use std::io::Write as _;
        let mut out = CappedOutput::default();
        assert!(out.write_all(&vec![b'x'; MAX_RENDERED_BYTES]).is_ok());
        assert!(out.write_all(b"y").is_err());
        assert!(out.overflowed);
    }
}
