//! The request fields a `Response` object echoes, with OpenAI's defaults where the request is
//! silent (the values OpenAI's own `response.created` bodies carry, e.g. in the recorded
//! `openai_responses_*.sse` fixtures).

use serde_json::{Map, Value};

/// Echoed request fields, sorted by key with `metadata` last (OpenAI's order), built once per
/// response and shared by every snapshot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestEcho {
    fields: Vec<(&'static str, Value)>,
}

/// What to do with a key the request leaves out (or sets to `null`).
enum Absent {
    /// Echo this default.
    Default(fn() -> Value),
    /// Leave the key out of the Response.
    Omit,
}

fn null() -> Value {
    Value::Null
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// Sorted by key; `metadata` last.
const FIELDS: &[(&str, Absent)] = &[
    ("background", Absent::Default(|| Value::Bool(false))),
    ("conversation", Absent::Omit),
    ("frequency_penalty", Absent::Default(|| number(0.0))),
    ("instructions", Absent::Default(null)),
    ("max_output_tokens", Absent::Default(null)),
    ("max_tool_calls", Absent::Default(null)),
    ("parallel_tool_calls", Absent::Default(|| Value::Bool(true))),
    ("presence_penalty", Absent::Default(|| number(0.0))),
    ("previous_response_id", Absent::Default(null)),
    ("prompt", Absent::Omit),
    ("prompt_cache_key", Absent::Default(null)),
    ("prompt_cache_retention", Absent::Default(null)),
    ("reasoning", Absent::Default(reasoning_default)),
    ("safety_identifier", Absent::Default(null)),
    ("service_tier", Absent::Default(|| Value::from("auto"))),
    ("store", Absent::Default(|| Value::Bool(true))),
    ("temperature", Absent::Default(|| number(1.0))),
    ("text", Absent::Default(text_default)),
    ("tool_choice", Absent::Default(|| Value::from("auto"))),
    ("tools", Absent::Default(|| Value::Array(Vec::new()))),
    ("top_logprobs", Absent::Default(|| Value::from(0))),
    ("top_p", Absent::Default(|| number(1.0))),
    ("truncation", Absent::Default(|| Value::from("disabled"))),
    ("user", Absent::Default(null)),
    ("metadata", Absent::Default(|| Value::Object(Map::new()))),
];

fn reasoning_default() -> Value {
    let mut m = Map::new();
    m.insert("effort".into(), Value::Null);
    m.insert("summary".into(), Value::Null);
    Value::Object(m)
}

fn text_default() -> Value {
    let mut format = Map::new();
    format.insert("type".into(), Value::from("text"));
    let mut m = Map::new();
    m.insert("format".into(), Value::Object(format));
    m.insert("verbosity".into(), Value::from("medium"));
    Value::Object(m)
}

/// Overlay the request's non-null keys on a default object (`reasoning: {effort: "low"}` keeps
/// `summary: null`).
fn merge_object(default: Value, given: &Value) -> Value {
    match (default, given) {
        (Value::Object(mut d), Value::Object(g)) => {
            for (k, v) in g {
                if !v.is_null() {
                    d.insert(k.clone(), v.clone());
                }
            }
            Value::Object(d)
        }
        (_, g) => g.clone(),
    }
}

/// Function tools come back with `description: null` and `strict: true` filled in, as OpenAI does.
fn normalise_tools(tools: &Value) -> Value {
    let Value::Array(list) = tools else {
        return tools.clone();
    };
    Value::Array(
        list.iter()
            .map(|t| match t {
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                    let mut o = o.clone();
                    o.entry("description").or_insert(Value::Null);
                    if o.get("strict").filter(|v| !v.is_null()).is_none() {
                        o.insert("strict".into(), Value::Bool(true));
                    }
                    Value::Object(o)
                }
                other => other.clone(),
            })
            .collect(),
    )
}

impl RequestEcho {
    /// Build from a `POST /v1/responses` body (`None`: every field at its default). Keys the
    /// Response does not echo (`input`, `model`, `stream`, `include`, …) are ignored; values are
    /// echoed as given, so a request the provider would reject may also fail validation here.
    pub fn from_request(request: Option<&Value>) -> Self {
        let req = request.and_then(Value::as_object);
        let mut fields = Vec::with_capacity(FIELDS.len());
        for (key, absent) in FIELDS {
            let given = req.and_then(|r| r.get(*key)).filter(|v| !v.is_null());
            let value = match (*key, given, absent) {
                ("reasoning", Some(g), _) => merge_object(reasoning_default(), g),
                ("text", Some(g), _) => merge_object(text_default(), g),
                ("tools", Some(g), _) => normalise_tools(g),
                // The request may name a conversation by id; the Response carries `{id}`.
                ("conversation", Some(Value::String(id)), _) => {
                    let mut m = Map::new();
                    m.insert("id".into(), Value::String(id.clone()));
                    Value::Object(m)
                }
                (_, Some(g), _) => g.clone(),
                (_, None, Absent::Default(f)) => f(),
                (_, None, Absent::Omit) => continue,
            };
            fields.push((*key, value));
        }
        RequestEcho { fields }
    }

    /// Every field at OpenAI's default (no request).
    pub fn default_fields() -> Self {
        Self::from_request(None)
    }

    /// The echoed fields in serialisation order.
    pub fn fields(&self) -> &[(&'static str, Value)] {
        &self.fields
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `background: true` in the request.
    pub fn background(&self) -> bool {
        self.get("background")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The request's `include` lists `message.output_text.logprobs`. Only then does OpenAI return
/// token logprobs (`top_logprobs` alone returns none; it only says how many alternatives).
pub fn includes_logprobs(request: &Value) -> bool {
    request
        .get("include")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|v| v == "message.output_text.logprobs"))
}
