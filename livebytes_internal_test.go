package cachier

import "testing"

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
