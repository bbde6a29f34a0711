package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisLogger routes go-redis's own log lines (dial retries) to cachier's stderr
// with --verbose, scrubbed of passwords, and drops them otherwise: cachier reports
// the failures that matter itself.
type redisLogger struct {
	m       *Main
	verbose bool
}

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l.verbose {
		fmt.Fprintln(l.m.Stderr, "redis: "+strings.TrimSpace(l.m.redact(fmt.Sprintf(format, v...))))
	}
}

// quietRedis sets go-redis's logger for this process.
func (m *Main) quietRedis(verbose bool) { redis.SetLogger(redisLogger{m: m, verbose: verbose}) }
