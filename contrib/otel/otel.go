// Package cachierotel connects cachier functions to OpenTelemetry: metrics read from
// Func.Stats, and a span per call.
//
// It is a module of its own, so that cachier does not depend on OpenTelemetry.
//
// Metrics are observable instruments read at collection time, which costs the
// functions nothing between collections:
//
//	reg, err := cachierotel.RegisterMetrics(otel.GetMeterProvider(), fetchReport, lookupUser)
//	defer reg.Unregister()
//
// Spans come from an Observer (cachier.Observer), installed on a function with the
// core's WithObserver option:
//
//	f, err := cachier.Wrap(fetchReport, cachier.WithObserver(cachierotel.NewObserver(nil)))
//
// Each call then has a span "cachier.Call <namespace>" with the attributes
// cachier.function, cachier.key_digest (a hash of the key, never the key itself, which
// may be readable), cachier.store, cachier.result (hit, stale_hit, miss, skipped),
// cachier.computed and cachier.wait_seconds; a call that fails records the error.
package cachierotel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/cachier-go/cachier"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/cachier-go/cachier/contrib/otel"

// Attribute keys.
const (
	AttrFunction  = attribute.Key("cachier.function")
	AttrKeyDigest = attribute.Key("cachier.key_digest")
	AttrStore     = attribute.Key("cachier.store")
	AttrResult    = attribute.Key("cachier.result")
	AttrComputed  = attribute.Key("cachier.computed")
	AttrWait      = attribute.Key("cachier.wait_seconds")
)

// Source is what the metrics read: a *cachier.Func of any type satisfies it.
type Source interface {
	Namespace() string
	Stats() cachier.Stats
}

// counterSpec is one observable counter and how to read it from Stats.
type counterSpec struct {
	name, unit, desc string
	get              func(cachier.Stats) int64
}

var counterSpecs = []counterSpec{
	{"cachier.cache.hits", "{call}", "Fresh results served from the store.", func(s cachier.Stats) int64 { return int64(s.Hits) }},
	{"cachier.cache.misses", "{call}", "Calls that found no usable result.", func(s cachier.Stats) int64 { return int64(s.Misses) }},
	{"cachier.cache.stale_hits", "{call}", "Stale results served at once while a background refresh runs.", func(s cachier.Stats) int64 { return int64(s.StaleHits) }},
	{"cachier.cache.refreshes", "{refresh}", "Background refreshes that stored a new result.", func(s cachier.Stats) int64 { return int64(s.Refreshes) }},
	{"cachier.cache.refresh_errors", "{refresh}", "Background refreshes that failed.", func(s cachier.Stats) int64 { return int64(s.RefreshErrors) }},
	{"cachier.cache.computations", "{computation}", "Times the wrapped function ran.", func(s cachier.Stats) int64 { return int64(s.Computations) }},
	{"cachier.cache.compute_errors", "{computation}", "Times the wrapped function returned an error.", func(s cachier.Stats) int64 { return int64(s.ComputeErrors) }},
	{"cachier.cache.waits", "{call}", "Calls that waited for another caller's computation.", func(s cachier.Stats) int64 { return int64(s.Waits) }},
	{"cachier.cache.wait_timeouts", "{call}", "Waits that gave up after WaitForCalcTimeout.", func(s cachier.Stats) int64 { return int64(s.WaitTimeouts) }},
	{"cachier.cache.lease_takeovers", "{lease}", "Calculation leases taken over after another holder's lease ran out.", func(s cachier.Stats) int64 { return int64(s.LeaseTakeovers) }},
	{"cachier.cache.store_errors", "{error}", "Store operations that failed; the call went on.", func(s cachier.Stats) int64 { return int64(s.StoreErrors) }},
	{"cachier.cache.decode_errors", "{error}", "Entries that were corrupt or did not decode.", func(s cachier.Stats) int64 { return int64(s.DecodeErrors) }},
	{"cachier.cache.invalidated", "{entry}", "Entries dropped because a tag, prefix or parent moved.", func(s cachier.Stats) int64 { return int64(s.Invalidated) }},
	{"cachier.cache.size_rejections", "{entry}", "Results not stored because of a size limit.", func(s cachier.Stats) int64 { return int64(s.SizeRejections) }},
	{"cachier.cache.nils_not_cached", "{entry}", "Nil results returned but not stored.", func(s cachier.Stats) int64 { return int64(s.NilsNotCached) }},
	{"cachier.cache.skipped_calls", "{call}", "Calls that bypassed the cache.", func(s cachier.Stats) int64 { return int64(s.SkippedCalls) }},
}

// RegisterMetrics registers observable counters over the Stats of srcs with a meter
// of mp (the global MeterProvider if nil). Each observation carries the attribute
// cachier.function, the function's namespace. Unregister the returned Registration
// to stop observing.
func RegisterMetrics(mp metric.MeterProvider, srcs ...Source) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	counters := make([]metric.Int64ObservableCounter, len(counterSpecs))
	insts := make([]metric.Observable, 0, len(counterSpecs)+2)
	for i, c := range counterSpecs {
		inst, err := m.Int64ObservableCounter(c.name, metric.WithUnit(c.unit), metric.WithDescription(c.desc))
		if err != nil {
			return nil, fmt.Errorf("cachierotel: counter %s: %w", c.name, err)
		}
		counters[i] = inst
		insts = append(insts, inst)
	}
	waitTime, err := m.Float64ObservableCounter("cachier.cache.wait_time", metric.WithUnit("s"),
		metric.WithDescription("Total time spent waiting for other callers' computations."))
	if err != nil {
		return nil, fmt.Errorf("cachierotel: counter cachier.cache.wait_time: %w", err)
	}
	computeTime, err := m.Float64ObservableCounter("cachier.cache.compute_time", metric.WithUnit("s"),
		metric.WithDescription("Total time the wrapped function ran."))
	if err != nil {
		return nil, fmt.Errorf("cachierotel: counter cachier.cache.compute_time: %w", err)
	}
	insts = append(insts, waitTime, computeTime)
	srcs = append([]Source(nil), srcs...)
	attrs := make([]metric.ObserveOption, len(srcs))
	for i, s := range srcs {
		attrs[i] = metric.WithAttributes(AttrFunction.String(s.Namespace()))
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, src := range srcs {
			s := src.Stats()
			for j, c := range counterSpecs {
				o.ObserveInt64(counters[j], c.get(s), attrs[i])
			}
			o.ObserveFloat64(waitTime, s.WaitTime.Seconds(), attrs[i])
			o.ObserveFloat64(computeTime, s.ComputeTime.Seconds(), attrs[i])
		}
		return nil
	}, insts...)
	if err != nil {
		return nil, fmt.Errorf("cachierotel: register the callback: %w", err)
	}
	return reg, nil
}

// Observer is a cachier.Observer that gives every call a span.
type Observer struct {
	tracer trace.Tracer
}

var _ cachier.Observer = (*Observer)(nil)

// NewObserver returns an Observer whose spans come from a tracer of tp (the global
// TracerProvider if nil).
func NewObserver(tp trace.TracerProvider) *Observer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Observer{tracer: tp.Tracer(ScopeName)}
}

// spanNames caches "cachier.Call <namespace>", so that a call does not build it.
var spanNames sync.Map // namespace -> string

func spanName(ns string) string {
	if v, ok := spanNames.Load(ns); ok {
		return v.(string)
	}
	v, _ := spanNames.LoadOrStore(ns, "cachier.Call "+ns)
	return v.(string)
}

// KeyDigest returns the digest of a key ID recorded in spans: the first 16 hex digits
// of its SHA-256, enough to correlate calls without revealing a readable key.
func KeyDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// CallStarted starts the call's span, a child of any span in ctx.
func (o *Observer) CallStarted(ctx context.Context, c cachier.CallInfo) context.Context {
	ctx, _ = o.tracer.Start(ctx, spanName(c.Namespace), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			AttrFunction.String(c.Namespace),
			AttrKeyDigest.String(KeyDigest(c.KeyID)),
			AttrStore.String(c.Store),
		))
	return ctx
}

// CallEnded records the outcome on the call's span and ends it.
func (o *Observer) CallEnded(ctx context.Context, out cachier.Outcome) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(
		AttrResult.String(out.Result.String()),
		AttrComputed.Bool(out.Computed),
		AttrWait.Float64(out.Waited.Seconds()),
	)
	if out.Err != nil {
		span.RecordError(out.Err)
		span.SetStatus(codes.Error, out.Err.Error())
	}
	span.End()
}
