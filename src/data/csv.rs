//! A small RFC 4180 CSV reader: quoted fields with "" escapes, commas and newlines inside
//! quotes, LF or CRLF line ends. Each record carries the line it starts on, counting the
//! newlines inside quoted fields, so errors point at the right line of the file.

use std::path::Path;

use super::error::DataError;

/// One CSV record and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Parses `text` (the contents of `file`, named in errors). Blank lines are skipped.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Record>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |line: usize, message: String| DataError::Csv {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut record_line = 1usize;
    let mut at_field_start = true;
    let mut in_quotes = false;
    let mut quoted_from = 0usize;
    let mut was_quoted = false;

    let end_record = |fields: &mut Vec<String>,
                      field: &mut String,
                      was_quoted: bool,
                      records: &mut Vec<Record>,
                      record_line: usize| {
        let blank = fields.is_empty() && field.is_empty() && !was_quoted;
        fields.push(std::mem::take(field));
        let done = std::mem::take(fields);
        if !blank {
            records.push(Record {
                line: record_line,
                fields: done,
            });
        }
    };

    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        in_quotes = false;
                        match chars.peek() {
                            None | Some(',') | Some('\n') | Some('\r') => {}
                            Some(other) => {
                                return Err(err(
                                    line,
                                    format!(
                                        "unexpected character {other:?} after the closing quote of a field"
                                    ),
                                ));
                            }
                        }
                    }
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                was_quoted = true;
                quoted_from = line;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_record(
                    &mut fields,
                    &mut field,
                    was_quoted,
                    &mut records,
                    record_line,
                );
                line += 1;
                record_line = line;
                at_field_start = true;
                was_quoted = false;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(err(quoted_from, "quoted field is never closed".into()));
    }
    end_record(
        &mut fields,
        &mut field,
        was_quoted,
        &mut records,
        record_line,
    );
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_commas_newlines_and_line_numbers() {
        let text = "a,b\r\n\"x, \"\"y\"\"\nz\",2\n\n3,\"\"\n";
        let r = parse(text, Path::new("t.csv")).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            Record {
                line: 2,
                fields: vec!["x, \"y\"\nz".into(), "2".into()]
            }
        );
        assert_eq!(
            r[2],
            Record {
                line: 5,
                fields: vec!["3".into(), "".into()]
            }
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("a,b\n1,2\n\"open\nstill open", Path::new("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.csv:3") && e.contains("never closed"), "{e}");
        let e = parse("a,b\n\"x\nx\"y,2\n", Path::new("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.csv:3") && e.contains("after the closing quote"),
            "{e}"
        );
    }
}
