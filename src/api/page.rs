//! The dashboard at `/` (`ui/` in the repository, embedded in the binary):
//! the fleet, costs, the proxy, the event log and heal buttons, live from
//! `/fleet/v1/stream` and `/fleet/v1/events/stream`, in any browser (the
//! phone included) and in the tray app's popover.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Scripts and styles from this origin only, no framing (clickjacking), and
/// no referrer leaking the fleet's address to a link target.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(super) async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    )
}

pub(super) async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    )
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../ui/app.css"))
}

/// Corrects a locale the chart library cannot take (`C`), before it loads.
pub(super) async fn locale_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/locale.js"),
    )
}

/// uPlot (MIT, `ui/vendor/`), the charts.
pub(super) async fn chart_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/vendor/uplot.min.js"),
    )
}

pub(super) async fn chart_style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../ui/vendor/uplot.min.css"),
    )
}
