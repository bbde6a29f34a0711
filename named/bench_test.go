package named

import (
	"sync"
	"testing"
)

// BenchmarkGet measures a hit against a hand-written RWMutex map, the floor it is
// judged by. Compare the two in one run: go test -bench Get -run ^$ ./named/
func BenchmarkGet(b *testing.B) {
	const n = 1024
	b.Run("named", func(b *testing.B) {
		m, err := NewManager(newMem(b), &Options{Logger: quiet, SyncInterval: -1}) // the real clock
		if err != nil {
			b.Fatal(err)
		}
		c := must[*Cache[int, int]](b)(Register[int, int](m, "bench", Persistent(false)))
		for i := range n {
			c.Set(i, i)
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(i % n)
				i++
			}
		})
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		var mu sync.RWMutex
		data := make(map[int]int, n)
		for i := range n {
			data[i] = i
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				mu.RLock()
				_ = data[i%n]
				mu.RUnlock()
				i++
			}
		})
	})
}
