//! Renders Hugging Face chat templates (Jinja) the way transformers' `apply_chat_template` does.
//!
//! transformers compiles templates in a sandboxed Jinja2 environment with `trim_blocks=True`,
//! `lstrip_blocks=True` (trailing newline of the template dropped), its own `tojson` filter
//! (`json.dumps` with `ensure_ascii=False`, Python separators, no HTML escaping) and the globals
//! `raise_exception` and `strftime_now`; it passes `messages`, `tools`, `documents`,
//! `add_generation_prompt` and the special tokens (`bos_token`, `eos_token`, ...). We mirror that
//! with minijinja, plus minijinja-contrib's Python-compatibility methods (`.strip()`,
//! `.startswith()`, `.split()`, `.items()`, ...), because templates are written against Python.
//! transformers' `{% generation %}` tag (only used to track assistant spans) renders its body
//! unchanged, so it is rewritten to a plain block before parsing.

use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind};

use super::dataset::ChatMessage;
use super::error::TextError;

/// Name under which the template is registered; appears in minijinja's own messages.
const TEMPLATE_NAME: &str = "chat_template.jinja";
/// Deepest nesting `tojson` follows (template data is shallow; this only stops runaway input).
const MAX_JSON_DEPTH: usize = 128;

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    extra: Vec<(String, Value)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_chars", &self.source.chars().count())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

/// Instruction budget of one render: real chat templates use a few thousand units per message.
const TEMPLATE_FUEL: u64 = 50_000_000;

impl ChatTemplate {
    /// Compiles `source`. `bos`/`eos` are the tokenizer's special tokens as strings; `None` leaves
    /// the variable undefined, as transformers does for an unset token.
    pub fn new(
        source: &str,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<ChatTemplate, TextError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // A hostile template (nested loops over huge ranges) runs out of fuel instead of hanging.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(source))
            .map_err(|e| TextError::TemplateSyntax {
                line: e.line(),
                msg: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos,
            eos_token: eos,
            extra: Vec::new(),
        })
    }

    /// Sets another variable transformers would pass (e.g. `pad_token`, `unk_token`,
    /// `enable_thinking`); it overrides one of the same name.
    pub fn with_variable(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra.retain(|(n, _)| n != name);
        self.extra
            .push((name.to_string(), Value::from_serialize(&value)));
        self
    }

    /// The Jinja source as given (before the `{% generation %}` rewrite).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages` (no tools, no documents), optionally followed by the prompt that opens
    /// an assistant turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| Value::from_object(MessageValue(m.clone())))
            .collect();
        let mut ctx: Vec<(String, Value)> = Vec::new();
        if let Some(b) = &self.bos_token {
            ctx.push(("bos_token".into(), Value::from(b.as_str())));
        }
        if let Some(e) = &self.eos_token {
            ctx.push(("eos_token".into(), Value::from(e.as_str())));
        }
        for (name, value) in &self.extra {
            ctx.retain(|(n, _)| n != name);
            ctx.push((name.clone(), value.clone()));
        }
        ctx.push(("messages".into(), Value::from(msgs)));
        ctx.push(("tools".into(), Value::from(())));
        ctx.push(("documents".into(), Value::from(())));
        ctx.push((
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        ));
        let ctx: Value = ctx.into_iter().collect();
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TextError::TemplateRender {
                line: e.line(),
                msg: describe(&e),
            })?;
        tmpl.render(ctx).map_err(render_error)
    }
}

/// A chat message as the template sees it: a map with keys in transformers' order
/// (`role`, `content`), so `tojson` and `.items()` list them as Python does.
#[derive(Debug)]
struct MessageValue(ChatMessage);

impl Object for MessageValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.0.role.as_str())),
            "content" => Some(Value::from(self.0.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

/// The message of a `raise_exception` call, carried as the source of the render error.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(Raised(msg)))
}

fn render_error(e: Error) -> TextError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if let Some(raised) = err.downcast_ref::<Raised>() {
            return TextError::TemplateRaised {
                line: e.line(),
                msg: raised.0.clone(),
            };
        }
        cur = err.source();
    }
    TextError::TemplateRender {
        line: e.line(),
        msg: describe(&e),
    }
}

/// minijinja's message with its detail, without the multi-line source excerpt.
fn describe(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(inner) = cur {
        msg.push_str(&format!(": {inner}"));
        cur = inner.source();
    }
    msg
}

/// Rewrites transformers' `{% generation %}` / `{% endgeneration %}` (which only mark assistant
/// spans) to `{% if true %}` / `{% endif %}`, keeping whitespace-control markers.
fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        // The closing `%}` after the opening `{%` (in `{%}` they overlap; found by
        // tests/fuzz.rs).
        let Some(close) = tag.get(2..).and_then(|t| t.find("%}")).map(|i| i + 2) else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..close];
        let body = inner
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+']);
        let word = body.trim();
        if word == "generation" || word == "endgeneration" {
            let lead = &inner[..inner.len() - inner.trim_start_matches(['-', '+']).len()];
            let trail = &inner[inner.trim_end_matches(['-', '+']).len()..];
            let replacement = if word == "generation" {
                "if true"
            } else {
                "endif"
            };
            out.push_str(&format!("{{%{lead} {replacement} {trail}%}}"));
        } else {
            out.push_str(&tag[..close + 2]);
        }
        rest = &tag[close + 2..];
    }
    out.push_str(rest);
    out
}

/// transformers' `tojson`: Python's `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent_arg: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent_arg {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => {
            if let Some(s) = v.as_str() {
                Some(s.to_string())
            } else {
                let n = i64::try_from(v.clone()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: indent must be an integer or string",
                    )
                })?;
                Some(" ".repeat(usize::try_from(n.clamp(0, 64)).unwrap_or(0)))
            }
        }
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if !s.is_none() => {
            let item: String = s
                .get_item(&Value::from(0))?
                .as_str()
                .map(str::to_string)
                .unwrap_or_default();
            let key: String = s
                .get_item(&Value::from(1))?
                .as_str()
                .map(str::to_string)
                .unwrap_or_default();
            (item, key)
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let style = JsonStyle {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&mut out, value, &style, 0)?;
    Ok(Value::from(out))
}

struct JsonStyle {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn json_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("tojson: {}", msg.into()),
    )
}

fn write_json(out: &mut String, v: &Value, style: &JsonStyle, depth: usize) -> Result<(), Error> {
    if depth > MAX_JSON_DEPTH {
        return Err(json_error("value nested too deeply"));
    }
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Undefined => return Err(json_error("value is undefined")),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number if v.is_integer() => out.push_str(&v.to_string()),
        ValueKind::Number => {
            let f = f64::try_from(v.clone()).map_err(|_| json_error("bad number"))?;
            out.push_str(&python_float(f));
        }
        ValueKind::String => {
            write_json_str(out, v.as_str().unwrap_or_default(), style.ensure_ascii)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            write_container(out, '[', ']', items.len(), style, depth, |out, i| {
                items
                    .get(i)
                    .map_or(Ok(()), |item| write_json(out, item, style, depth + 1))
            })?;
        }
        ValueKind::Map => {
            let mut pairs: Vec<(String, Value)> = Vec::new();
            for key in v.try_iter()? {
                let name = json_key(&key)?;
                let item = v.get_item(&key)?;
                pairs.push((name, item));
            }
            if style.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, '{', '}', pairs.len(), style, depth, |out, i| {
                if let Some((k, item)) = pairs.get(i) {
                    write_json_str(out, k, style.ensure_ascii);
                    out.push_str(&style.key_sep);
                    write_json(out, item, style, depth + 1)?;
                }
                Ok(())
            })?;
        }
        _ => {
            return Err(json_error(format!(
                "cannot serialise a value of kind {}",
                v.kind()
            )));
        }
    }
    Ok(())
}

fn write_container(
    out: &mut String,
    open: char,
    close: char,
    len: usize,
    style: &JsonStyle,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        if i > 0 {
            out.push_str(&style.item_sep);
        }
        if let Some(ind) = &style.indent {
            out.push('\n');
            out.push_str(&ind.repeat(depth + 1));
        }
        item(out, i)?;
    }
    if let Some(ind) = &style.indent {
        out.push('\n');
        out.push_str(&ind.repeat(depth));
    }
    out.push(close);
    Ok(())
}

/// Python's `json.dumps` turns `None`, booleans and numbers used as keys into strings.
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::None => Ok("null".into()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.into()),
        ValueKind::Number => {
            let mut s = String::new();
            write_json(
                &mut s,
                key,
                &JsonStyle {
                    ensure_ascii: false,
                    indent: None,
                    item_sep: String::new(),
                    key_sep: String::new(),
                    sort_keys: false,
                },
                0,
            )?;
            Ok(s)
        }
        kind => Err(json_error(format!(
            "keys must be str, int, float, bool or None, not {kind}"
        ))),
    }
}

fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "-1.2345e6"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            format!(
                "{sign}0.{}{digits}",
                "0".repeat(point.unsigned_abs() as usize)
            )
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            }
        }
    } else {
        format!(
            "{sign}{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    }
}

/// transformers' `strftime_now(format)`: the current time through C `strftime`. Basin formats UTC
/// (the local time of a container) and supports the common conversions, with glibc's `-` flag.
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    strftime_utc(&format, secs).map(Value::from)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `unix_secs` (UTC) with a C `strftime` format.
fn strftime_utc(format: &str, unix_secs: u64) -> Result<String, Error> {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = usize::try_from((days + 3).rem_euclid(7)).unwrap_or(0); // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let month_name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("");
    let day_name = WEEKDAYS.get(weekday).copied().unwrap_or("");
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        let no_pad = spec == Some('-');
        if no_pad {
            spec = chars.next();
        }
        let num = |v: i64, width: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
        let piece = match spec {
            Some('Y') => year.to_string(),
            Some('y') => num(year.rem_euclid(100), 2),
            Some('m') => num(i64::from(month), 2),
            Some('d') => num(i64::from(day), 2),
            Some('e') => {
                if no_pad {
                    day.to_string()
                } else {
                    format!("{day:2}")
                }
            }
            Some('H') => num(hour as i64, 2),
            Some('I') => num(hour12 as i64, 2),
            Some('M') => num(minute as i64, 2),
            Some('S') => num(second as i64, 2),
            Some('j') => num(yday, 3),
            Some('p') => if hour < 12 { "AM" } else { "PM" }.to_string(),
            Some('B') => month_name.to_string(),
            Some('b') | Some('h') => month_name.chars().take(3).collect(),
            Some('A') => day_name.to_string(),
            Some('a') => day_name.chars().take(3).collect(),
            Some('F') => format!("{year}-{month:02}-{day:02}"),
            Some('T') => format!("{hour:02}:{minute:02}:{second:02}"),
            Some('Z') => "UTC".to_string(),
            Some('z') => "+0000".to_string(),
            Some('%') => "%".to_string(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported conversion %{}",
                        other.map(String::from).unwrap_or_default()
                    ),
                ));
            }
        };
        out.push_str(&piece);
    }
    Ok(out)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_rewrite_and_overlapping_delimiters_pass_through() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation %}b{% endgeneration -%}"),
            "a{%- if true %}b{% endif -%}"
        );
        assert_eq!(rewrite_generation_tags("{%}"), "{%}");
        assert_eq!(rewrite_generation_tags("x{%}%}y"), "x{%}%}y");
    }
    use std::path::Path;

    fn fixture(name: &str) -> (String, serde_json::Value) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/templates")
            .join(name);
        let src = std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap();
        let expected =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        (src, expected)
    }

    fn msgs(v: &serde_json::Value) -> Vec<ChatMessage> {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn tojson_items_and_string_methods_match_transformers() {
        let (src, expected) = fixture("tojson_probe");
        let t = ChatTemplate::new(&src, Some("<s>".into()), Some("</s>".into())).unwrap();
        let cases = expected["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let m = msgs(&case["messages"]);
            assert_eq!(t.render(&m, false).unwrap(), case["text"].as_str().unwrap());
            assert_eq!(
                t.render(&m[..m.len() - 1], true).unwrap(),
                case["prefix_text"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn whitespace_settings_match_jinja2() {
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before it,
        // and the template's final newline is dropped.
        let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
        let t = ChatTemplate::new(src, None, None).unwrap();
        let out = t
            .render(
                &[
                    ChatMessage::new("user", "a"),
                    ChatMessage::new("assistant", "b"),
                    ChatMessage::new("user", "c"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(out, "[a]\n[c]\n");
    }

    #[test]
    fn variables_and_undefined_tokens() {
        let src = "{{ bos_token is defined }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ pad_token | default('-') }}|{{ enable_thinking is defined }}";
        let t = ChatTemplate::new(src, None, Some("E".into())).unwrap();
        // Booleans print as Python does.
        assert_eq!(
            t.render(&[], true).unwrap(),
            "False|E|True|True|True|-|False"
        );
        let t = t
            .with_variable("pad_token", serde_json::json!("P"))
            .with_variable("enable_thinking", serde_json::json!(false));
        assert_eq!(
            t.render(&[], false).unwrap(),
            "False|E|True|True|False|P|True"
        );
    }

    #[test]
    fn raise_exception_is_reported_with_its_message() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'system' %}\n{{ raise_exception('System first, please!') }}\n{% endif %}ok",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("system", "s")], false).unwrap(),
            "ok"
        );
        let err = t
            .render(&[ChatMessage::new("user", "u")], false)
            .unwrap_err();
        assert_eq!(err.raised_message(), Some("System first, please!"));
        assert!(
            matches!(err, TextError::TemplateRaised { line: Some(2), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn syntax_and_render_errors_name_the_line() {
        let err = ChatTemplate::new(
            "ok\n{% for m in messages %}\n{{ m.content }\n{% endfor %}",
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, TextError::TemplateSyntax { line: Some(3), .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("chat template line 3:"),
            "{err}"
        );
        let t = ChatTemplate::new(
            "a\n{{ messages[0].content.nonexistent_method() }}",
            None,
            None,
        )
        .unwrap();
        let err = t
            .render(&[ChatMessage::new("user", "u")], false)
            .unwrap_err();
        assert!(
            matches!(err, TextError::TemplateRender { line: Some(2), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn generation_tags_render_their_body() {
        let src = "{% for m in messages %}{% if m.role == 'assistant' %}{%- generation -%}\n{{ m.content }}\n{%- endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        let out = t
            .render(
                &[
                    ChatMessage::new("user", "q "),
                    ChatMessage::new("assistant", "a"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(out, "q a");
        assert_eq!(
            rewrite_generation_tags("x{%- generation %}y{% endgeneration -%}"),
            "x{%- if true %}y{% endif -%}"
        );
        assert_eq!(rewrite_generation_tags("{% if a %}{%"), "{% if a %}{%");
    }

    #[test]
    fn python_float_repr() {
        for (f, want) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-0.1, "-0.1"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(python_float(f), want, "{f}");
        }
    }

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-07-26 13:05:09 UTC, a Friday.
        let t = 1_722_000_000 - 1_722_000_000 % 86_400 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(strftime_utc("%d %b %Y", t).unwrap(), "26 Jul 2024");
        assert_eq!(
            strftime_utc("%A %B %-d, %y %H:%M:%S %I%p %j %%", t).unwrap(),
            "Friday July 26, 24 13:05:09 01PM 208 %"
        );
        assert_eq!(strftime_utc("%Y-%m-%d", 0).unwrap(), "1970-01-01");
        assert_eq!(strftime_utc("%F", 951_782_400).unwrap(), "2000-02-29");
        assert!(strftime_utc("%Q", 0).is_err());
        let t = ChatTemplate::new("{{ strftime_now('%Y') | length }}", None, None).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "4");
    }
}
