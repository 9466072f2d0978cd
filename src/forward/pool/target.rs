//! One target of a pool: its pooled client, its share of traffic, its slots and its counters.

use super::connections::Connections;
use super::health::TargetHealth;
use crate::config::{RouteConfig, TargetConfig, Upstream};
use crate::forward::connect::ClientError;
use crate::metrics::{Metrics, RouteName, TargetLabels};
use http::HeaderValue;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A backend server of a route.
pub struct Target {
    pub upstream: Upstream,
    /// The upstream's authority as a `Host` value (sent when the route does not preserve the client's).
    pub host: HeaderValue,
    pub weight: u32,
    pub backup: bool,
    /// Its own kept-alive connections, so one slow server cannot hold the others' idle connections.
    pub conns: Arc<Connections>,
    pub health: Arc<TargetHealth>,
    /// Requests in flight (from send to the end of the response body), for `least_requests`.
    in_flight: Arc<AtomicUsize>,
    /// One permit per request in flight when `max_connections_per_target` is set.
    slots: Option<Arc<Semaphore>>,
    pub requests: Counter,
    pub duration: Histogram,
}

/// What a request holds on its target until its response body ends.
pub struct Lease {
    in_flight: Option<InFlight>,
    permit: Option<OwnedSemaphorePermit>,
}

/// One request counted in flight on its target (`least_requests`), until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lease {
    /// The slot and the count, to travel with the response body.
    pub fn into_parts(self) -> (Option<OwnedSemaphorePermit>, Option<InFlight>) {
        (self.permit, self.in_flight)
    }
}

/// Every slot of a target stayed taken for the whole queue timeout.
#[derive(Debug)]
pub struct Busy;

impl Target {
    /// Builds target `t` of `route`.
    pub fn new(
        route: &RouteConfig,
        route_name: &RouteName,
        t: &TargetConfig,
        health: Arc<TargetHealth>,
        metrics: &Metrics,
    ) -> Result<Target, ClientError> {
        let labels = TargetLabels {
            route: route_name.clone(),
            target: health.target().clone(),
        };
        let limit = route.pool.max_connections_per_target;
        Ok(Target {
            host: HeaderValue::from_str(t.upstream.authority.as_str())
                .map_err(|e| ClientError::new(&route.name, e.to_string()))?,
            upstream: t.upstream.clone(),
            weight: t.weight,
            backup: t.backup,
            conns: Connections::new(route, &t.upstream)?,
            health,
            in_flight: Arc::new(AtomicUsize::new(0)),
            slots: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            requests: metrics.targets.requests.get_or_create(&labels).clone(),
            duration: metrics.targets.duration.get_or_create(&labels).clone(),
        })
    }

    /// Requests in flight now.
    pub fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a slot (waiting at most `wait` when all are taken) and, when `count` is set, counts the request
    /// in flight.
    pub async fn lease(&self, count: bool, wait: Duration) -> Result<Lease, Busy> {
        let permit = match &self.slots {
            None => None,
            Some(slots) => Some(match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => tokio::time::timeout(wait, slots.clone().acquire_owned())
                    .await
                    .map_err(|_| Busy)?
                    .map_err(|_| Busy)?,
            }),
        };
        let in_flight = count.then(|| {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            InFlight(self.in_flight.clone())
        });
        Ok(Lease { in_flight, permit })
    }
}
