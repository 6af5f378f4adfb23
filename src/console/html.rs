//! Server-rendered HTML: escaping, the page frame, tables and the sparkline SVG.

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A path segment or query value, percent-encoded.
pub fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · gregor</title>\
         <link rel=\"stylesheet\" href=\"/static/console.css\"></head><body>\
         <nav><a href=\"/\">Cluster</a><a href=\"/topics\">Topics</a><a href=\"/groups\">Consumer groups</a></nav>\
         <main><h1 id=\"title\">{t}</h1>{body}</main><script src=\"/static/console.js\"></script></body></html>",
        t = esc(title)
    )
}

/// A table; cells are already-escaped HTML.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{id}\"><tr>");
    for h in head {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            out.push_str(&format!("<td>{c}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

pub fn message(result: &Result<String, String>) -> String {
    match result {
        Ok(m) if m.is_empty() => String::new(),
        Ok(m) => format!("<p class=\"ok\" id=\"result\">{}</p>", esc(m)),
        Err(e) => format!("<p class=\"error\" id=\"result\">{}</p>", esc(e)),
    }
}

/// A sparkline of `values` as an SVG polyline (newest on the right).
pub fn sparkline(values: &[f64]) -> String {
    let (w, h) = (240.0, 40.0);
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    let n = values.len().max(2) as f64 - 1.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / n,
                h - 2.0 - v / max * (h - 4.0)
            )
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\"><polyline fill=\"none\" stroke=\"#23395d\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"4\" y=\"12\" font-size=\"10\">{:.0}/s</text></svg>",
        points.join(" "),
        values.last().copied().unwrap_or(0.0)
    )
}

/// Bytes as text: valid UTF-8 as is, JSON pretty-printed, or hex.
pub fn render_bytes(b: Option<&[u8]>, format: &str) -> String {
    let Some(b) = b else {
        return "<i>null</i>".into();
    };
    match format {
        "hex" => esc(&b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")),
        "json" => match serde_json::from_slice::<serde_json::Value>(b) {
            Ok(v) => format!(
                "<pre>{}</pre>",
                esc(&serde_json::to_string_pretty(&v).unwrap_or_default())
            ),
            Err(_) => format!("<i>not JSON</i> {}", esc(&String::from_utf8_lossy(b))),
        },
        _ => esc(&String::from_utf8_lossy(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_rendering() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
        assert_eq!(url("a b/c"), "a%20b%2Fc");
        assert_eq!(render_bytes(Some(b"\x01\xff"), "hex"), "01 ff");
        assert!(render_bytes(Some(b"{\"a\":1}"), "json").contains("&quot;a&quot;: 1"));
        assert_eq!(render_bytes(None, "text"), "<i>null</i>");
        assert!(sparkline(&[0.0, 5.0, 10.0]).contains("10/s"));
    }
}
