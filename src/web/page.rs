//! The dashboard's files, compiled into the binary (no CDN, no build step
//! at install): one page, its script and its style sheet.

use super::http::Response;

const INDEX: &str = include_str!("page/index.html");
const APP: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// `""` or `index.html`, `app.js`, `style.css`.
pub fn serve(name: &str) -> Response {
    match name {
        "" | "index.html" => Response::new(200, "text/html; charset=utf-8", INDEX),
        "app.js" => Response::new(200, "text/javascript; charset=utf-8", APP),
        "style.css" => Response::new(200, "text/css; charset=utf-8", STYLE),
        _ => Response::error(404, "no such page"),
    }
}
