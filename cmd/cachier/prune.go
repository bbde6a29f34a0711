package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Pruning: "cachier run" deletes its own old recorded runs, so that its namespace
// does not grow without bound.
const (
	defaultPruneAfter = 30 * 24 * time.Hour // recorded runs older than this go
	defaultMaxSize    = 1 << 30             // past this, the oldest recorded runs go
	pruneEvery        = time.Hour           // a store and namespace are pruned at most this often per user
	pruneTimeout      = 30 * time.Second    // a slow store does not hold the run longer
)

// now is the time of Main's clock.
func (m *Main) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// pruneMarker is the file whose contents say when this user last pruned the
// namespace ns of the store at storeURL.
func pruneMarker(storeURL, ns string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(displayURL(storeURL) + "\x00" + ns))
	return filepath.Join(dir, "cachier", "pruned", hex.EncodeToString(sum[:12])), nil
}

// prune deletes the recorded runs of the namespace older than --prune-after, then
// the oldest ones beyond --max-size, at most once per pruneEvery (a marker file in
// the user's cache directory remembers the last time). It reports only with
// --verbose: pruning is housekeeping, never the run's failure.
func (c *runConfig) prune(ctx context.Context, m *Main, storeURL string, st store.Store, log *slog.Logger) {
	if c.skip || (c.pruneAfter == 0 && c.maxSize == 0) {
		return
	}
	now := m.now()
	marker, err := pruneMarker(storeURL, c.name)
	if err != nil {
		return
	}
	if b, err := os.ReadFile(marker); err == nil {
		if last, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
			if d := now.Sub(last); d >= 0 && d < pruneEvery {
				return
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err == nil {
		_ = os.WriteFile(marker, []byte(now.UTC().Format(time.RFC3339Nano)+"\n"), 0o600)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pruneTimeout)
	defer cancel()
	old, bySize := 0, 0
	if c.pruneAfter > 0 {
		old, err = st.DeleteBefore(ctx, c.name, now.Add(-c.pruneAfter))
		if err != nil && c.verbose {
			log.Info("cachier: pruning old recorded runs failed", "ns", c.name, "err", err)
		}
	}
	if c.maxSize > 0 {
		bySize, err = pruneToSize(ctx, st, c.name, c.maxSize)
		if err != nil && c.verbose && !errors.Is(err, errors.ErrUnsupported) {
			log.Info("cachier: pruning recorded runs to --max-size failed", "ns", c.name, "err", err)
		}
	}
	if c.verbose {
		log.Info("cachier: pruned recorded runs (change with --prune-after and --max-size, or $CACHIER_PRUNE_AFTER and $CACHIER_MAX_SIZE; --prune-after 0 turns it off)",
			"ns", c.name, "older_than", formatDuration(c.pruneAfter), "deleted_old", old, "deleted_over_size", bySize)
	}
}

// pruneToSize deletes the oldest entries of ns until the rest total at most max
// bytes, and returns how many it deleted.
func pruneToSize(ctx context.Context, st store.Store, ns string, max int64) (int, error) {
	var infos []store.Info
	var total int64
	for info, err := range st.Entries(ctx, ns) {
		if err != nil {
			return 0, err
		}
		infos = append(infos, info)
		total += info.Size
	}
	if total <= max {
		return 0, nil
	}
	slices.SortFunc(infos, func(a, b store.Info) int {
		return cmp.Or(a.StoredAt.Compare(b.StoredAt), cmp.Compare(a.Key.ID, b.Key.ID))
	})
	n := 0
	for _, info := range infos {
		if total <= max {
			break
		}
		if err := st.Delete(ctx, info.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, err
		}
		total -= info.Size
		n++
	}
	return n, nil
}

// sizeValue is a size flag: bytes, or a number with K, M, G or T (powers of 1024).
type sizeValue int64

func (s *sizeValue) String() string {
	if s == nil {
		return "0"
	}
	n := int64(*s)
	for _, u := range []struct {
		unit string
		size int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeValue(n)
	return nil
}

// parseSize parses "1024", "500K", "1.5M", "2G", "1T" (also "KB", "KiB", ...;
// powers of 1024, case-insensitive).
func parseSize(v string) (int64, error) {
	bad := func() (int64, error) {
		return 0, fmt.Errorf("invalid size %s: give bytes or a number with a unit, such as 1048576, 500K, 1.5M, 2G or 1T (powers of 1024)", quote(v))
	}
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	if s == "" || strings.ContainsAny(s, "+-EINFXP_") {
		return bad()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return bad()
	}
	f *= mult
	if f >= math.MaxInt64 {
		return bad()
	}
	return int64(f), nil
}
