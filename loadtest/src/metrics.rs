//! Reads counters out of the node's Prometheus `/metrics` text.

/// The sum of every sample of `name` (with or without labels); `None` if there is none.
pub fn counter(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters() {
        let text = "# HELP rostrum_rtp_packets_forwarded_total x\n\
            # TYPE rostrum_rtp_packets_forwarded_total counter\n\
            rostrum_rtp_packets_forwarded_total 1234\n\
            rostrum_rtp_packets_forwarded_total_extra 5\n\
            rostrum_hls_parts_published_total{room=\"a\"} 3\n\
            rostrum_hls_parts_published_total{room=\"b\"} 4 1700000000\n";
        assert_eq!(
            counter(text, "rostrum_rtp_packets_forwarded_total"),
            Some(1234.0)
        );
        assert_eq!(
            counter(text, "rostrum_hls_parts_published_total"),
            Some(7.0)
        );
        assert_eq!(counter(text, "rostrum_nothing"), None);
        assert_eq!(counter("rostrum_x garbage", "rostrum_x"), None);
    }
}
