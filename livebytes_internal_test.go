package cachier

import (
	"context"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/store/memstore"
)

// sizeOf counts what a value reaches: a longer string, slice or map is a larger entry.
func TestSizeOf(t *testing.T) {
	type rep struct {
		Title string
		Rows  []int
		M     map[string]*int
	}
	small := sizeOf[rep](any(rep{Title: "a", Rows: []int{1}}))
	big := sizeOf[rep](any(rep{Title: string(make([]byte, 1000)), Rows: make([]int, 100), M: map[string]*int{"k": new(int)}}))
	if small < 24+24+8 || big < small+1000+800+8 {
		t.Fatalf("sizeOf: small %d, big %d", small, big)
	}
	if n := sizeOf[[4]int](any([4]int{})); n != 32 {
		t.Fatalf("sizeOf([4]int) = %d, want 32", n)
	}
}

// A memory miss stores its result without bytes, counted at the size of what it
// reaches (the liveEncoder works out once whether the result type reaches anything):
// a result holding 10,000 bytes of text counts at least that against the store's bound.
func TestLazyEntrySizeCountsWhatResultReaches(t *testing.T) {
	type page struct{ Body string }
	ms := memstore.New(nil)
	f, err := Wrap(func(_ context.Context, n int) (page, error) {
		return page{Body: strings.Repeat("x", n)}, nil
	}, Name("test/lazy-size"), WithStore(ms))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(context.Background(), 10000); err != nil {
		t.Fatal(err)
	}
	if got := ms.Bytes(); got < 10000 {
		t.Fatalf("store counts %d bytes for a result of 10,000 bytes of text", got)
	}
}
