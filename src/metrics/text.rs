//! Small helpers over prometheus-client's encoder: a metric family written from values
//! computed at scrape time (a `Collector` per scrape, no long-lived registry state).

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

pub type Labels = Vec<(&'static str, String)>;

/// One sample of a family: its labels and value.
pub enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(f64, u64, Vec<(f64, u64)>),
}

/// A metric family: name (without `_total` for counters: the encoder adds it), help, type
/// and samples.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub samples: Vec<(Labels, Value)>,
}

impl Family {
    pub fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Counter,
            samples: Vec::new(),
        }
    }
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            samples: Vec::new(),
        }
    }
    pub fn histogram(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Histogram,
            samples: Vec::new(),
        }
    }
    pub fn add(&mut self, labels: Labels, value: Value) -> &mut Self {
        self.samples.push((labels, value));
        self
    }
    pub fn with(mut self, labels: Labels, value: Value) -> Self {
        self.samples.push((labels, value));
        self
    }
}

/// The families of one scrape, encoded through prometheus-client's text encoder.
#[derive(Default)]
pub struct Scrape {
    pub families: Vec<Family>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrape({} families)", self.families.len())
    }
}

struct Encoded(Scrape);

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl prometheus_client::collector::Collector for Encoded {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0.families {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.samples {
                if labels.is_empty() {
                    encode_value(&mut metric, value)?;
                } else {
                    encode_value(&mut metric.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(m: &mut MetricEncoder, value: &Value) -> Result<(), std::fmt::Error> {
    match value {
        Value::Counter(v) => m.encode_counter::<Labels, u64, f64>(v, None),
        Value::Gauge(v) => m.encode_gauge(v),
        Value::Histogram(sum, count, buckets) => {
            m.encode_histogram::<Labels>(*sum, *count, buckets, None)
        }
    }
}

impl Scrape {
    pub fn push(&mut self, family: Family) {
        self.families.push(family);
    }

    /// The OpenMetrics text (Prometheus scrapes it; `# EOF` terminated).
    pub fn encode(self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Encoded(self)));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}
