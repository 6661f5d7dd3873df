//! The standard `OTEL_*` variables the SDK reads without a word about what it cannot use (it
//! drops a header or resource entry it cannot parse, fails on a bad endpoint only when it first
//! sends, dials whatever port it is given, replaces a number it cannot read with the default)
//! or does not read at all (`OTEL_PROPAGATORS`). Each is a message at start here instead: an
//! error for a value that cannot be right, a warning for one that may be (a port) or that names
//! something this server does not do (a propagator it does not implement).

use super::propagation::{Format, Propagation};

/// Checks that the OTLP endpoint is an `http://` or `https://` URL with a host (and a valid port
/// if it has one), and returns that port. Otherwise the HTTP exporter fails only when it first
/// sends, as a warning per minute, and the gRPC one takes a scheme-less `host:port` as plaintext
/// where the specification says TLS: a message at start is clearer than either.
pub(super) fn check_endpoint(endpoint: &str) -> Result<Option<u16>, String> {
    let fail = |why: &str| {
        Err(format!(
            "OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT {endpoint:?} {why}; write a URL such as \
             http://localhost:4318 (OTLP/HTTP), http://localhost:4317 (gRPC) or https://... for TLS"
        ))
    };
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return fail("has no scheme");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return fail("is neither http:// nor https://");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return fail("has an unclosed [IPv6] host"),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return fail("has no host");
    }
    match port.filter(|p| !p.is_empty()).map(str::parse::<u16>) {
        None => Ok(None),
        Some(Ok(port)) => Ok(Some(port)),
        Some(Err(_)) => fail("has a port that is not a number from 0 to 65535"),
    }
}

/// The standard OTLP ports, 4317 for gRPC and 4318 for OTLP/HTTP, are the most common mix-up:
/// a gRPC exporter sent to 4318 (or HTTP to 4317) only fails at each export, with a transport
/// error that does not say why. Returns what to write at start when the endpoint's port is the
/// other protocol's, and nothing otherwise (any other port may be right).
pub(super) fn port_mismatch(protocol: &str, endpoint: &str) -> Option<String> {
    let port = check_endpoint(endpoint).ok()??;
    let (its_port, other, other_port) = match protocol {
        "grpc" => (4317, "http/protobuf", 4318),
        "http/protobuf" => (4318, "grpc", 4317),
        _ => return None,
    };
    (port == other_port).then(|| {
        format!(
            "the OTLP endpoint's port {port} is the standard port of {other}, but the protocol is \
             {protocol} (standard port {its_port}); if no spans arrive, use port {its_port} or set \
             OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL={other}"
        )
    })
}

/// `OTEL_EXPORTER_OTLP_TRACES_INSECURE` when it is set, else `OTEL_EXPORTER_OTLP_INSECURE`: the
/// variable's name and value.
pub(super) fn insecure_from_env() -> Option<(&'static str, String)> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
        "OTEL_EXPORTER_OTLP_INSECURE",
    ]
    .into_iter()
    .find_map(|var| {
        let value = std::env::var(var).ok()?.trim().to_owned();
        (!value.is_empty()).then_some((var, value))
    })
}

/// A gRPC endpoint written without a scheme (`collector:4317`), which the specification allows:
/// TLS (`https://`) unless the insecure variable is `true` (`http://`), the rule the SDK's gRPC
/// exporter applies too. Resolved here so that the start line, the checks and the TLS set-up
/// see the URL that is dialled. Any other endpoint is returned as it is.
pub(super) fn with_grpc_scheme(protocol: &str, endpoint: String, insecure: Option<&str>) -> String {
    let has_scheme = endpoint
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    if protocol != "grpc" || has_scheme {
        return endpoint;
    }
    if insecure.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// The insecure variable only decides for a gRPC endpoint without a scheme; otherwise the scheme
/// does. Returns a warning when the variable says the opposite of what the endpoint will do
/// (`true` with `https://`, or `false` with `http://`, which sends spans in plaintext).
pub(super) fn insecure_disagrees(var: &str, value: &str, endpoint: &str) -> Option<String> {
    let scheme = endpoint.split_once("://")?.0.to_ascii_lowercase();
    let (uses, write) = match (value.to_ascii_lowercase().as_str(), scheme.as_str()) {
        ("true", "https") => ("TLS", "http://"),
        ("false", "http") => ("plaintext, no TLS", "https://"),
        _ => return None,
    };
    Some(format!(
        "{var}={value} is ignored: it only applies to a gRPC endpoint written without a scheme,          and the endpoint {endpoint:?} has one, so the export uses {uses}; write {write} in the          endpoint for the other"
    ))
}

/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as written over OTLP/HTTP, path included, so
/// `http://collector:4318` posts to `/`, where collectors answer 404 at every export; the
/// generic variable gets `/v1/traces` added. Returns what to write at start for that mistake.
pub(super) fn traces_endpoint_without_path(
    protocol: &str,
    traces_endpoint: &str,
) -> Option<String> {
    if protocol != "http/protobuf" {
        return None;
    }
    let (_, rest) = traces_endpoint.split_once("://")?;
    let path = rest
        .find('/')
        .map_or("", |at| &rest[at..])
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    matches!(path, "" | "/").then(|| {
        format!(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT {traces_endpoint:?} has no path, and it is used as \
             written: spans go to \"/\", where collectors answer 404; write \
             {}/v1/traces, or set OTEL_EXPORTER_OTLP_ENDPOINT, which gets /v1/traces added",
            traces_endpoint.trim_end_matches('/')
        )
    })
}

/// Checks the export headers where the exporters read them: `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
/// when it is set, else `OTEL_EXPORTER_OTLP_HEADERS`.
pub(super) fn check_headers_from_env() -> Result<(), String> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if let Ok(value) = std::env::var(var) {
            return check_headers(var, &value);
        }
    }
    Ok(())
}

/// The export headers as the exporters read them (see [`check_headers_from_env`], which the
/// start-up runs first): keys trimmed, values percent-decoded; entries that are not `key=value`
/// with both parts are left out, as the SDK does.
pub(super) fn headers_from_env() -> Vec<(String, String)> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ]
    .iter()
    .find_map(|var| std::env::var(var).ok())
    .map(|value| headers(&value))
    .unwrap_or_default()
}

fn headers(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|entry| {
            let (key, raw) = entry.split_once('=')?;
            let value = percent_decode(raw.trim())?;
            let key = key.trim();
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// Checks comma-separated `key=value` entries with percent-encoded values, as the specification
/// writes them. The exporters leave out an entry they cannot use, so a mistyped `authorization`
/// would only show as the collector's 401 at every export. The message names the entry by its
/// place, never its key or value: a mistyped entry may be a token.
fn check_headers(var: &str, value: &str) -> Result<(), String> {
    use reqwest::header::{HeaderName, HeaderValue};
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    let count = entries.iter().filter(|e| !e.is_empty()).count();
    for (n, entry) in entries.iter().filter(|e| !e.is_empty()).enumerate() {
        let fail = |why: &str| {
            Err(format!(
                "{var}: entry {} of {count} {why} (not shown: it may be a secret); write \
                 key=value pairs separated by commas, the values percent-encoded (%20 for a space, \
                 %2C for a comma, %25 for %)",
                n + 1
            ))
        };
        let Some((key, raw)) = entry.split_once('=') else {
            return fail("has no '='");
        };
        let key = key.trim();
        if key.is_empty() || HeaderName::from_bytes(key.as_bytes()).is_err() {
            return fail("has a key that is not a header name");
        }
        match percent_decode(raw.trim()) {
            None => return fail("has a value that is not percent-encoded correctly"),
            Some(v) if v.is_empty() => return fail("has an empty value"),
            Some(v) if HeaderValue::from_str(&v).is_err() => {
                return fail("has a value with characters a header cannot carry");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `key=value` entries of `OTEL_RESOURCE_ATTRIBUTES`, values percent-decoded as the
/// specification says, and a warning for each entry that is not one: an entry without `=` or a
/// key is left out (as the SDK does, silently), a bad escape keeps its value as written. A
/// warning rather than a refused start: a missing attribute costs less than a pod that does
/// not start (Kubernetes leaves an undefined `$(VAR)` in a value as it is, for one).
pub(super) fn resource_attributes_from_env() -> (Vec<(String, String)>, Vec<String>) {
    resource_attributes(&std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default())
}

fn resource_attributes(value: &str) -> (Vec<(String, String)>, Vec<String>) {
    let warning = |entry: &str, why: &str| {
        format!(
            "OTEL_RESOURCE_ATTRIBUTES entry {entry:?} {why}; write key=value pairs separated by \
             commas, the values percent-encoded (%2C for a comma, %25 for %)"
        )
    };
    let mut attributes = Vec::new();
    let mut warnings = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, raw)) = entry.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            warnings.push(warning(entry, "is not key=value and is left out"));
            continue;
        };
        let raw = raw.trim();
        let value = percent_decode(raw).unwrap_or_else(|| {
            warnings.push(warning(
                entry,
                "is not percent-encoded correctly and is kept as written",
            ));
            raw.to_owned()
        });
        attributes.push((key.trim().to_owned(), value));
    }
    (attributes, warnings)
}

/// What `OTEL_PROPAGATORS` asks of incoming requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Propagators {
    /// The caller formats read, in the listed order (empty for `none`).
    pub propagation: Propagation,
    /// Listed propagators this server does not implement, for a warning.
    pub unsupported: Vec<String>,
}

/// Reads `OTEL_PROPAGATORS` (the SDK does not): unset means `tracecontext,baggage`. `baggage`
/// is accepted and not read (nothing here uses baggage). A name this server does not implement
/// (`xray-lambda`, a vendor's, a typo) is listed for a warning, not refused: platforms inject
/// this variable for every pod, and the only cost is that those headers are not read.
pub(super) fn propagators_from_env() -> Propagators {
    propagators(&std::env::var("OTEL_PROPAGATORS").unwrap_or_default())
}

fn propagators(value: &str) -> Propagators {
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return propagators("tracecontext,baggage");
    }
    Propagators {
        propagation: Propagation::new(names.iter().filter_map(|n| Format::from_name(n))),
        unsupported: names
            .into_iter()
            .filter(|n| Format::from_name(n).is_none() && !matches!(n.as_str(), "baggage" | "none"))
            .collect(),
    }
}

/// Checks `OTEL_TRACES_EXPORTER`: this server exports OTLP (`otlp`, the default) or nothing
/// (`none`); the SDK does not read the variable, so `console` or a typo would export OTLP anyway.
pub(super) fn check_traces_exporter_from_env() -> Result<(), String> {
    check_traces_exporter(&std::env::var("OTEL_TRACES_EXPORTER").unwrap_or_default())
}

fn check_traces_exporter(value: &str) -> Result<(), String> {
    let unsupported = value.split(',').map(str::trim).find(|n| {
        !n.is_empty() && !n.eq_ignore_ascii_case("otlp") && !n.eq_ignore_ascii_case("none")
    });
    match unsupported {
        None => Ok(()),
        Some(name) => Err(format!(
            "unsupported OTEL_TRACES_EXPORTER {name:?}; use otlp (the default: to \
             OTEL_EXPORTER_OTLP_ENDPOINT) or none"
        )),
    }
}

/// A warning for a boolean variable set to neither `true` nor `false`: the specification takes
/// anything but `true` as false and asks for a warning, as `OTEL_SDK_DISABLED=1` looks like it
/// switches the SDK off and does not.
pub(super) fn boolean_warning(var: &str, value: &str) -> Option<String> {
    let value = value.trim();
    let boolean = value.is_empty()
        || value.eq_ignore_ascii_case("true")
        || value.eq_ignore_ascii_case("false");
    (!boolean).then(|| format!("{var}={value:?} is neither true nor false; it is taken as false"))
}

/// `%XX` sequences decoded; `None` for a `%` without two hex digits or a result that is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The variables that take a whole number (of milliseconds for the delays and timeouts).
const NUMBERS: [(&str, &str); 6] = [
    ("OTEL_BSP_SCHEDULE_DELAY", "milliseconds, e.g. 5000"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "milliseconds, e.g. 30000"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "spans, e.g. 2048"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "spans, e.g. 512"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "milliseconds, e.g. 10000"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "milliseconds, e.g. 10000",
    ),
];

/// Checks that the batch and timeout variables that are set are whole numbers: the SDK and
/// [`super::BatchSettings`] fall back to the default for anything else, so `10s` would quietly
/// mean 10 000 ms and `5s` 5 000.
pub(super) fn check_numbers_from_env() -> Result<(), String> {
    NUMBERS.iter().try_for_each(|(var, unit)| {
        let value = std::env::var(var).unwrap_or_default();
        check_number(var, value.trim(), unit)
    })
}

fn check_number(var: &str, value: &str, unit: &str) -> Result<(), String> {
    if value.is_empty() || value.parse::<u64>().is_ok() {
        return Ok(());
    }
    Err(format!(
        "{var} {value:?} is not a whole number; write it in {unit}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_or_https_urls_with_a_host() {
        for good in [
            "http://localhost:4318",
            "HTTPS://collector.example:443/",
            "http://127.0.0.1:4318/v1/traces",
            "http://[::1]:4317",
            "https://user@otel.example",
            "http://collector",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("localhost:4317", "has no scheme"),
            ("ftp://x:1", "neither http:// nor https://"),
            ("http://", "has no host"),
            ("http://:4318/v1/traces", "has no host"),
            ("http://[::1:4317", "unclosed"),
            ("http://localhost:99999", "port"),
            ("http://localhost:port", "port"),
        ] {
            let error = check_endpoint(bad).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
            assert!(
                error.contains(&format!("{bad:?}")),
                "names the value: {error}"
            );
        }
    }

    #[test]
    fn the_endpoint_port_is_read_when_there_is_one() {
        assert_eq!(
            check_endpoint("http://localhost:4318/v1/traces"),
            Ok(Some(4318))
        );
        assert_eq!(check_endpoint("http://[::1]:4317"), Ok(Some(4317)));
        assert_eq!(check_endpoint("https://otel.example/"), Ok(None));
        assert_eq!(check_endpoint("http://otel.example:/"), Ok(None));
    }

    #[test]
    fn the_other_protocols_standard_port_is_pointed_out() {
        let grpc_to_http = port_mismatch("grpc", "http://collector:4318").expect("a hint");
        assert!(
            grpc_to_http.contains("port 4318 is the standard port of http/protobuf")
                && grpc_to_http.contains("use port 4317")
                && grpc_to_http.contains("PROTOCOL=http/protobuf"),
            "{grpc_to_http}"
        );
        let http_to_grpc =
            port_mismatch("http/protobuf", "http://127.0.0.1:4317/v1/traces").expect("a hint");
        assert!(
            http_to_grpc.contains("use port 4318") && http_to_grpc.contains("PROTOCOL=grpc"),
            "{http_to_grpc}"
        );
        for (protocol, endpoint) in [
            ("grpc", "http://collector:4317"),
            ("http/protobuf", "http://collector:4318"),
            ("grpc", "https://collector"),
            ("http/protobuf", "http://collector:8080"),
            ("grpc", "not a url"),
        ] {
            assert_eq!(
                port_mismatch(protocol, endpoint),
                None,
                "{protocol} {endpoint}"
            );
        }
    }

    #[test]
    fn percent_encoded_values_decode_and_bad_escapes_do_not() {
        assert_eq!(
            percent_decode("Basic%20dXNl%3D%3D").as_deref(),
            Some("Basic dXNl==")
        );
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["50%", "%2", "%zz", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn export_headers_are_read_trimmed_and_percent_decoded_leaving_out_what_is_not_a_pair() {
        let pairs = |v: &str| -> Vec<(String, String)> { headers(v) };
        let own = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            pairs(" x-tenant = acme , authorization=Bearer%20t0ken%2C2"),
            own(&[("x-tenant", "acme"), ("authorization", "Bearer t0ken,2")])
        );
        assert_eq!(pairs("no-equals,=value,empty=,ok=1,"), own(&[("ok", "1")]));
        assert_eq!(pairs("bad=%zz,ok=2"), own(&[("ok", "2")]));
        assert!(pairs("").is_empty());
    }

    #[test]
    fn export_headers_are_key_value_pairs_and_errors_do_not_show_them() {
        for good in [
            "",
            "x-tenant=acme",
            " x-tenant = acme , authorization=Bearer%20abc ",
            "a=b,",
        ] {
            assert_eq!(check_headers("V", good), Ok(()), "{good:?}");
        }
        for (bad, why) in [
            ("x-tenant=acme,Bearer s3cret", "entry 2 of 2 has no '='"),
            ("=s3cret", "not a header name"),
            ("bad key=s3cret", "not a header name"),
            ("authorization=s3cret%", "not percent-encoded"),
            ("authorization=", "empty value"),
            ("authorization=s3cret%0A", "cannot carry"),
        ] {
            let error = check_headers("OTEL_EXPORTER_OTLP_HEADERS", bad).expect_err(bad);
            assert!(
                error.starts_with("OTEL_EXPORTER_OTLP_HEADERS: ") && error.contains(why),
                "{bad}: {error}"
            );
            assert!(
                !error.contains("s3cret"),
                "{bad}: the value is shown: {error}"
            );
        }
    }

    #[test]
    fn batch_and_timeout_variables_are_whole_numbers() {
        for good in ["", "0", "5000"] {
            assert_eq!(check_number("V", good, "milliseconds"), Ok(()), "{good:?}");
        }
        for bad in ["5s", "-1", "1.5", "five"] {
            let error = check_number("OTEL_BSP_SCHEDULE_DELAY", bad, "milliseconds, e.g. 5000")
                .expect_err(bad);
            assert!(
                error.contains(&format!("OTEL_BSP_SCHEDULE_DELAY {bad:?}"))
                    && error.contains("milliseconds"),
                "{error}"
            );
        }
    }

    #[test]
    fn resource_attributes_are_decoded_and_a_malformed_entry_is_warned_about() {
        assert_eq!(
            resource_attributes(",team=search%20and%20ads, service.version = 1.2 ,,"),
            (
                vec![
                    ("team".to_owned(), "search and ads".to_owned()),
                    ("service.version".to_owned(), "1.2".to_owned()),
                ],
                vec![]
            )
        );
        assert_eq!(resource_attributes(""), (vec![], vec![]));
        let (attributes, warnings) =
            resource_attributes("a=1,deployment.environment:prod,=prod,load=50%");
        assert_eq!(
            attributes,
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("load".to_owned(), "50%".to_owned())
            ]
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("\"deployment.environment:prod\" is not key=value"));
        assert!(warnings[1].contains("\"=prod\" is not key=value"));
        assert!(warnings[2].contains("\"load=50%\" is not percent-encoded"));
    }

    #[test]
    fn propagators_name_the_formats_read_and_the_names_not_implemented() {
        use Format::{B3, Jaeger, OtTrace, TraceContext, XRay};
        let read = |v: &str| {
            let p = propagators(v);
            (p.propagation.formats().to_vec(), p.unsupported)
        };
        assert_eq!(read(""), (vec![TraceContext], vec![]));
        assert_eq!(read("tracecontext"), (vec![TraceContext], vec![]));
        assert_eq!(
            read(" TraceContext , baggage "),
            (vec![TraceContext], vec![])
        );
        assert_eq!(read("none"), (vec![], vec![]));
        assert_eq!(read("baggage"), (vec![], vec![]));
        assert_eq!(read("b3multi,jaeger"), (vec![B3, Jaeger], vec![]));
        assert_eq!(
            read("xray,tracecontext,ottrace"),
            (vec![XRay, TraceContext, OtTrace], vec![])
        );
        assert_eq!(
            read("jaeger,b3,tracecontext,b3multi"),
            (vec![Jaeger, B3, TraceContext], vec![])
        );
        assert_eq!(
            read("tracecontext,b3,xray-lambda"),
            (vec![TraceContext, B3], vec!["xray-lambda".to_owned()])
        );
        // A typo of tracecontext reads nothing, and is named in the warning.
        assert_eq!(
            read("tracecontex"),
            (vec![], vec!["tracecontex".to_owned()])
        );
    }

    #[test]
    fn the_traces_exporter_is_otlp_or_none() {
        for good in ["", "otlp", "OTLP", "none", " otlp "] {
            assert_eq!(check_traces_exporter(good), Ok(()), "{good:?}");
        }
        for bad in ["console", "otlp,zipkin", "otlp_http"] {
            let error = check_traces_exporter(bad).expect_err(bad);
            assert!(
                error.contains("OTEL_TRACES_EXPORTER") && error.contains("none"),
                "{error}"
            );
        }
    }

    #[test]
    fn booleans_other_than_true_or_false_are_warned_about() {
        for fine in ["", "true", "TRUE", "false", " False "] {
            assert_eq!(boolean_warning("V", fine), None, "{fine:?}");
        }
        let warning = boolean_warning("OTEL_SDK_DISABLED", "1").expect("a warning");
        assert!(warning.contains("OTEL_SDK_DISABLED=\"1\"") && warning.contains("false"));
    }

    #[test]
    fn a_traces_endpoint_without_a_path_is_pointed_out_for_otlp_http() {
        let hint = traces_endpoint_without_path("http/protobuf", "http://collector:4318/")
            .expect("a hint");
        assert!(
            hint.contains("write http://collector:4318/v1/traces"),
            "{hint}"
        );
        assert!(traces_endpoint_without_path("http/protobuf", "http://collector:4318").is_some());
        for (protocol, endpoint) in [
            ("http/protobuf", "http://collector:4318/v1/traces"),
            (
                "http/protobuf",
                "https://ingest.example/otlp/spans?tenant=a",
            ),
            ("grpc", "http://collector:4317"),
        ] {
            assert_eq!(
                traces_endpoint_without_path(protocol, endpoint),
                None,
                "{endpoint}"
            );
        }
    }

    #[test]
    fn a_grpc_endpoint_without_a_scheme_gets_tls_unless_insecure_is_true() {
        let resolve = |protocol, endpoint: &str, insecure| {
            with_grpc_scheme(protocol, endpoint.to_owned(), insecure)
        };
        for (endpoint, insecure, expected) in [
            ("collector:4317", None, "https://collector:4317"),
            ("collector:4317", Some("false"), "https://collector:4317"),
            ("collector:4317", Some("TRUE"), "http://collector:4317"),
            // Anything but true is false, as for every boolean of the specification.
            ("collector:4317", Some("1"), "https://collector:4317"),
            // A "://" inside the path is not a scheme.
            (
                "collector:4317/p://q",
                Some("true"),
                "http://collector:4317/p://q",
            ),
        ] {
            assert_eq!(
                resolve("grpc", endpoint, insecure),
                expected,
                "{insecure:?}"
            );
        }
        // A scheme decides, whatever the variable says; OTLP/HTTP endpoints are left as written
        // (and refused without a scheme by check_endpoint).
        for (protocol, endpoint) in [
            ("grpc", "https://collector:4317"),
            ("grpc", "http://collector:4317"),
            ("http/protobuf", "collector:4318"),
        ] {
            assert_eq!(resolve(protocol, endpoint, Some("true")), endpoint);
        }
    }

    #[test]
    fn insecure_saying_the_opposite_of_the_scheme_is_pointed_out() {
        let var = "OTEL_EXPORTER_OTLP_INSECURE";
        let warning = insecure_disagrees(var, "true", "https://collector:4317").expect("warned");
        assert!(
            warning.contains("uses TLS") && warning.contains("write http://"),
            "{warning}"
        );
        let warning = insecure_disagrees(var, "False", "http://collector:4317").expect("warned");
        assert!(
            warning.contains("plaintext") && warning.contains("write https://"),
            "{warning}"
        );
        for (value, endpoint) in [
            ("true", "http://collector:4317"),
            ("false", "https://collector:4317"),
            ("1", "https://collector:4317"),
        ] {
            assert_eq!(
                insecure_disagrees(var, value, endpoint),
                None,
                "{value} {endpoint}"
            );
        }
    }
}
