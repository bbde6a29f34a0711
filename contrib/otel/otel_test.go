package cachierotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	cachierotel "github.com/cachier-go/cachier/contrib/otel"
	"github.com/cachier-go/cachier/store/memstore"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// call drives the Observer as the core does around one Call: CallStarted, work on
// the returned context, CallEnded.
func call(ctx context.Context, o cachier.Observer, info cachier.CallInfo, out cachier.Outcome, work func(context.Context)) {
	ctx = o.CallStarted(ctx, info)
	if work != nil {
		work(ctx)
	}
	o.CallEnded(ctx, out)
}

func TestSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	o := cachierotel.NewObserver(tp)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	info := cachier.CallInfo{Namespace: "main.fetchReport@v2", KeyID: "user:42", Store: "*redisstore.Store"}
	call(ctx, o, info, cachier.Outcome{Result: cachier.ResultHit}, nil)
	call(ctx, o, info, cachier.Outcome{Result: cachier.ResultMiss, Computed: true}, func(ctx context.Context) {
		// The function's own spans are children of the call's span.
		_, s := tp.Tracer("test").Start(ctx, "query")
		s.End()
	})
	call(ctx, o, info, cachier.Outcome{Result: cachier.ResultMiss, Waited: 1500 * time.Millisecond}, nil)
	boom := errors.New("boom")
	call(ctx, o, info, cachier.Outcome{Result: cachier.ResultMiss, Computed: true, Err: boom}, nil)
	parent.End()

	spans := sr.Ended()
	var calls []sdktrace.ReadOnlySpan
	var query sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.Name() {
		case "cachier.Call main.fetchReport@v2":
			calls = append(calls, s)
		case "query":
			query = s
		}
	}
	if len(calls) != 4 || query == nil {
		t.Fatalf("got %d call spans and query %v; want 4 and a query span", len(calls), query)
	}
	for _, s := range calls {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("call span's parent is %v, want the request span", s.Parent().SpanID())
		}
		a := attrs(s)
		if a[cachierotel.AttrFunction].AsString() != "main.fetchReport@v2" || a[cachierotel.AttrStore].AsString() != "*redisstore.Store" {
			t.Errorf("attributes %v", a)
		}
		if d := a[cachierotel.AttrKeyDigest].AsString(); d != cachierotel.KeyDigest("user:42") || len(d) != 16 {
			t.Errorf("key digest %q", d)
		}
		for _, kv := range s.Attributes() {
			if kv.Value.AsString() == "user:42" {
				t.Errorf("the readable key leaked in %s", kv.Key)
			}
		}
	}
	want := []struct {
		result   string
		computed bool
		wait     float64
		status   codes.Code
	}{
		{"hit", false, 0, codes.Unset},
		{"miss", true, 0, codes.Unset},
		{"miss", false, 1.5, codes.Unset},
		{"miss", true, 0, codes.Error},
	}
	for i, w := range want {
		a := attrs(calls[i])
		if a[cachierotel.AttrResult].AsString() != w.result || a[cachierotel.AttrComputed].AsBool() != w.computed ||
			a[cachierotel.AttrWait].AsFloat64() != w.wait || calls[i].Status().Code != w.status {
			t.Errorf("span %d: result %v computed %v wait %v status %v; want %+v", i,
				a[cachierotel.AttrResult].AsString(), a[cachierotel.AttrComputed].AsBool(), a[cachierotel.AttrWait].AsFloat64(), calls[i].Status().Code, w)
		}
	}
	if query.Parent().SpanID() != calls[1].SpanContext().SpanID() {
		t.Error("the function's span is not a child of the call's span")
	}
	if ev := calls[3].Events(); len(ev) != 1 || ev[0].Name != "exception" {
		t.Errorf("the error is not recorded: %v", ev)
	}
}

// TestNotRecording: with a sampler that drops everything, the Observer does nothing
// but start and end a non-recording span.
func TestNotRecording(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.NeverSample()))
	o := cachierotel.NewObserver(tp)
	call(context.Background(), o, cachier.CallInfo{Namespace: "ns", KeyID: "k"}, cachier.Outcome{Result: cachier.ResultHit}, nil)
	if n := len(sr.Ended()); n != 0 {
		t.Fatalf("%d spans recorded with NeverSample", n)
	}
}

func triple(_ context.Context, n int) (int, error) { return 3 * n, nil }

func TestMetrics(t *testing.T) {
	f, err := cachier.Wrap(triple, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	reg, err := cachierotel.RegisterMetrics(mp, f)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := f.Call(ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, reader)
	for name, want := range map[string]int64{"cachier.cache.hits": 2, "cachier.cache.misses": 1, "cachier.cache.computations": 1, "cachier.cache.store_errors": 0} {
		v, ok := got[name]
		if !ok || v != want {
			t.Errorf("%s = %v (present %v), want %d", name, v, ok, want)
		}
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("observations after Unregister: %v", got)
	}
}

// collect returns the int64 sums observed for f's namespace, by metric name.
func collect(t *testing.T, r sdkmetric.Reader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != cachierotel.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			if !sum.IsMonotonic {
				t.Errorf("%s is not monotonic", m.Name)
			}
			for _, dp := range sum.DataPoints {
				if v, ok := dp.Attributes.Value(cachierotel.AttrFunction); !ok || v.AsString() == "" {
					t.Errorf("%s has no function attribute", m.Name)
				}
				out[m.Name] = dp.Value
			}
		}
	}
	return out
}

// TestThroughWrap: the Observer installed with cachier.WithObserver gives a real
// function's calls their spans, and the function's own spans are their children.
func TestThroughWrap(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	fn := func(ctx context.Context, x int) (int, error) {
		_, s := tp.Tracer("test").Start(ctx, "compute")
		s.End()
		return x * 2, nil
	}
	f, err := cachier.Wrap(fn, cachier.Name("traced"), cachier.WithStore(memstore.New(nil)),
		cachier.WithObserver(cachierotel.NewObserver(tp)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, 1)
	f.Call(ctx, 1)
	var results []string
	var compute sdktrace.ReadOnlySpan
	var first sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch s.Name() {
		case "cachier.Call traced":
			if first == nil {
				first = s
			}
			results = append(results, attrs(s)[cachierotel.AttrResult].AsString())
		case "compute":
			compute = s
		}
	}
	if len(results) != 2 || results[0] != "miss" || results[1] != "hit" {
		t.Fatalf("call spans %v, want a miss then a hit", results)
	}
	if compute == nil || compute.Parent().SpanID() != first.SpanContext().SpanID() {
		t.Fatal("the function's span is not a child of the miss's span")
	}
}
