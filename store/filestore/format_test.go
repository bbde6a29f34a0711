package filestore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

func TestRecordRoundTrip(t *testing.T) {
	times := []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC),
		time.Date(1500, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	for _, ts := range times {
		for _, v := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xff}, 70000)} {
			rec := encodeRecord(ts, time.Time{}, "id/../..", v)
			id, e, err := decodeEntry(rec)
			if err != nil {
				t.Fatalf("decode(%v, %d bytes): %v", ts, len(v), err)
			}
			if id != "id/../.." || !bytes.Equal(e.Value, v) || !e.StoredAt.Equal(ts) {
				t.Fatalf("round trip of (%v, %d bytes) gave (%q, %d bytes, %v)", ts, len(v), id, len(e.Value), e.StoredAt)
			}
		}
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := encodeRecord(time.Unix(1700000000, 5), time.Time{}, "key", []byte("value"))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":        nil,
		"short header": good[:headerSize-1],
		"truncated":    good[:len(good)-1],
		"header only":  good[:headerSize],
		"extended":     append(bytes.Clone(good), 0),
		"other magic":  mut(func(b []byte) []byte { b[3] = 'L'; binary.BigEndian.PutUint32(b[32:], checksum(b)); return b }),
		"foreign":      []byte("#!/bin/sh\necho this is not a cache entry at all, really\n"),
		"zeros":        make([]byte, 100),
		"version":      mut(func(b []byte) []byte { b[4] = 2; return b }),
		"reserved":     mut(func(b []byte) []byte { b[6] = 1; return b }),
		"nanos":        mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], 1e9); return b }),
		"zero id":      mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 0); return b }),
		"huge payload": mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[24:], 1<<63); return b }),
		"checksum":     mut(func(b []byte) []byte { b[33] ^= 1; return b }),
		"value bit":    mut(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }),
		"id bit":       mut(func(b []byte) []byte { b[headerSize] ^= 4; return b }),
		"time bit":     mut(func(b []byte) []byte { b[15] ^= 1; return b }),
		"length shift": mut(func(b []byte) []byte { b[23]++; binary.BigEndian.PutUint64(b[24:], 4); return b }),
	}
	for name, rec := range cases {
		if _, _, err := decodeEntry(rec); !errors.Is(err, errFormat) {
			t.Errorf("%s: decodeEntry = %v, want an error matching errFormat", name, err)
		}
	}
}

// FuzzDecodeEntry checks that decoding never panics, that whatever it accepts is
// exactly what encodeRecord would have written for the decoded fields (so a mutated
// file can only be accepted if it is byte-for-byte a valid encoding, which needs a
// matching checksum), and that changing the checksum of a valid record is always
// caught.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeRecord(time.Unix(1700000000, 123), time.Time{}, "k", []byte("v")), uint(0))
	f.Add(encodeRecord(time.Time{}, time.Time{}, strings.Repeat("x", store.MaxIDLen), nil), uint(7))
	f.Add([]byte("CGFE\x01\x00\x00\x00"), uint(1))
	f.Add([]byte{}, uint(0))
	f.Add(encodeRecord(time.Unix(1700000000, 123), time.Unix(1700000060, 5), "k", []byte("v")), uint(2))
	f.Fuzz(func(t *testing.T, rec []byte, flip uint) {
		id, e, err := decodeEntry(rec)
		if err == nil {
			again := encodeRecord(e.StoredAt, e.ExpiresAt, id, e.Value)
			if !bytes.Equal(again, rec) {
				t.Fatalf("accepted a record that does not re-encode to itself:\n in  %x\n out %x", rec, again)
			}
			// Any change to the checksum field must be rejected.
			bad := bytes.Clone(rec)
			bad[32+flip%4] ^= byte(1 + flip%255)
			if _, _, err := decodeEntry(bad); err == nil {
				t.Fatalf("accepted a record with a mutated checksum: %x", bad)
			}
		} else if !errors.Is(err, errFormat) {
			t.Fatalf("error %v does not match errFormat", err)
		}
	})
}

func TestNSDirName(t *testing.T) {
	cases := []struct {
		ns, dir string
		hashed  bool
	}{
		{"main.fetch", "main.fetch", false},
		{"pkg/sub.fn_v2-x", "pkg%2Fsub.fn_v2-x", false},
		{".", "%2E", false},
		{"..", "%2E.", false},
		{"../../etc", "%2E.%2F..%2Fetc", false},
		{"a b%", "a%20b%25", false},
		{"é", "%C3%A9", false},
		{"Main.Fetch", "Main.Fetch~", true},
		{strings.Repeat("a", 200), strings.Repeat("a", maxReadableLen) + "~", true},
	}
	for _, c := range cases {
		dir, hashed := nsDirName(c.ns)
		if hashed != c.hashed || !strings.HasPrefix(dir, c.dir) || (!hashed && dir != c.dir) {
			t.Errorf("nsDirName(%q) = %q, %v; want %q..., %v", c.ns, dir, hashed, c.dir, c.hashed)
		}
		if len(dir) > 200 || strings.ContainsAny(dir, "/\x00") || strings.HasPrefix(dir, ".") {
			t.Errorf("nsDirName(%q) = %q is not a safe name", c.ns, dir)
		}
		got, ok := decodeNSDirName(dir)
		if ok == hashed || (ok && got != c.ns) {
			t.Errorf("decodeNSDirName(%q) = %q, %v", dir, got, ok)
		}
	}
	if a, _ := nsDirName("pkg.Foo"); strings.EqualFold(a, func() string { b, _ := nsDirName("pkg.foo"); return b }()) {
		t.Errorf("pkg.Foo and pkg.foo map to names equal but for case: %q", a)
	}
}

func FuzzNSDirName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "A%41", strings.Repeat("%", 200), "x~y", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ns string) {
		if store.ValidateNamespace(ns) != nil {
			return
		}
		dir, hashed := nsDirName(ns)
		if dir == "" || dir == "." || dir == ".." || strings.HasPrefix(dir, ".") || strings.ContainsAny(dir, "/\x00") || len(dir) > 255 {
			t.Fatalf("nsDirName(%q) = %q", ns, dir)
		}
		if got, ok := decodeNSDirName(dir); ok == hashed || (ok && got != ns) {
			t.Fatalf("decodeNSDirName(%q) = %q, %v for namespace %q", dir, got, ok, ns)
		}
		// Any decodable name decodes to a namespace that maps back to it.
		if got, ok := decodeNSDirName(ns); ok {
			if again, _ := nsDirName(got); again != ns {
				t.Fatalf("decodeNSDirName(%q) = %q, which maps to %q", ns, got, again)
			}
		}
	})
}

// Records written by earlier versions (these bytes came from the encoder of commit
// 210a9ff) still decode, and encode again to the same bytes.
func TestDecodesEarlierRecords(t *testing.T) {
	at := time.Unix(1700000000, 123)
	for _, c := range []struct {
		hex, id, value string
		exp            time.Time
	}{
		{"4347464501000000000000006553f1000000007b000000010000000000000001f92d377e6b76", "k", "v", time.Time{}},
		{"4347464501010000000000006553f1000000007b000000020000000000000005044ef2361797a04466e2a1c8696476616c7565", "id", "value", time.Unix(1700003600, 456)},
	} {
		rec, _ := hex.DecodeString(c.hex)
		id, e, err := decodeEntry(rec)
		if err != nil || id != c.id || string(e.Value) != c.value || !e.StoredAt.Equal(at) || !e.ExpiresAt.Equal(c.exp) {
			t.Errorf("decode %s = %q, %+v, %v", c.hex, id, e, err)
		}
		if again := encodeRecord(e.StoredAt, e.ExpiresAt, id, e.Value); !bytes.Equal(again, rec) {
			t.Errorf("encodes again to %x, want %s", again, c.hex)
		}
	}
}

// An entry's ExpiresAt round-trips to the nanosecond; an entry without one keeps the
// old layout (no expiry flag, no expiry field).
func TestEntryExpiryRoundTrip(t *testing.T) {
	at, exp := time.Unix(1700000000, 123), time.Unix(1700003600, 456)
	id, e, err := decodeEntry(encodeRecord(at, exp, "k", []byte("v")))
	if err != nil || id != "k" || string(e.Value) != "v" || !e.StoredAt.Equal(at) || !e.ExpiresAt.Equal(exp) {
		t.Fatalf("decode = %q, %+v, %v", id, e, err)
	}
	if rec := encodeRecord(at, time.Time{}, "k", []byte("v")); rec[5] != 0 || len(rec) != headerSize+2 {
		t.Fatal("an entry without expiry changed layout")
	}
	if _, e, err := decodeEntry(encodeRecord(at, time.Time{}, "k", nil)); err != nil || !e.ExpiresAt.IsZero() {
		t.Fatalf("no expiry: %+v, %v", e, err)
	}
}
