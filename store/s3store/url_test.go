package s3store

import (
	"context"
	"testing"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

const testSecret = "s3cr3t-DO-NOT-LEAK"

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want urlConfig
		err  string // substring of the error; "" for success
	}{
		{url: "s3://bucket", want: urlConfig{bucket: "bucket"}},
		{url: "s3://bucket/", want: urlConfig{bucket: "bucket"}},
		{url: "S3://bucket/app", want: urlConfig{bucket: "bucket", prefix: "app/"}},
		{url: "s3://bucket/a/b/", want: urlConfig{bucket: "bucket", prefix: "a/b/"}},
		{
			url:  "s3://cache/app?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
			want: urlConfig{bucket: "cache", prefix: "app/", endpoint: "http://127.0.0.1:9000", region: "us-east-1", pathStyle: true},
		},
		{url: "s3://b.with.dots?profile=dev&path_style=0", want: urlConfig{bucket: "b.with.dots", profile: "dev"}},
		{
			url:  "s3://AKID:" + testSecret + "@bucket?endpoint=https://s3.example.com",
			want: urlConfig{bucket: "bucket", endpoint: "https://s3.example.com", accessKey: "AKID", secretKey: testSecret},
		},
		{url: "s3://AKID:" + testSecret + "@bucket?bogus=1", err: "unknown parameter \"bogus\"; accepted: endpoint, path_style, profile, region"},
		{url: "s3://AKID@bucket", err: "the access key and the secret key"},
		{url: "s3://:" + testSecret + "@bucket", err: "the access key and the secret key"},
		{url: "s3://bucket?region=us-east-1&region=eu-west-1", err: "given 2 times"},
		{url: "s3://bucket?path_style=maybe", err: "path_style"},
		{url: "s3://bucket?region=US_EAST", err: "region"},
		{url: "s3://bucket?endpoint=ftp://x", err: "endpoint"},
		{url: "s3://bucket?endpoint=127.0.0.1:9000", err: "endpoint"},
		{url: "s3://bucket?endpoint=http://u:" + testSecret + "@h:1", err: "credentials"},
		{url: "s3://bucket:9000/x", err: "port"},
		{url: "s3://", err: "bucket"},
		{url: "s3://b", err: "bucket"},
		{url: "s3://bad~name", err: "holds '~'"},
		{url: "s3://bucket/a//b", err: "segment"},
		{url: "s3://bucket/x#frag", err: "fragment"},
		{url: "s3:bucket", err: "s3://"},
		{url: "http://bucket", err: "scheme"},
		{url: "s3://bucket?%zz", err: "query"},
	}
	for _, tc := range tests {
		got, err := parseURL(storetest.MustParseURL(t, tc.url))
		if tc.err != "" {
			storetest.CheckBadURL(t, tc.url, err, tc.err, testSecret)
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseURL(%q) = %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
	}
}

// TestOpenRegistered checks that store.Open reaches OpenURL and that errors from the
// whole path keep the secret out.
func TestOpenRegistered(t *testing.T) {
	_, err := store.Open(context.Background(), "s3://AKID:"+testSecret+"@bucket?nope=1")
	storetest.CheckBadURL(t, "s3://AKID:…@bucket?nope=1", err, "nope", testSecret)
	_, s := storetest.Opened[*Store](t, "s3://AKID:"+testSecret+"@bucket/app?endpoint=http://127.0.0.1:1&region=us-east-1&path_style=true&lazy=1")
	if got := s.Prefix(); got != "app/" {
		t.Errorf("Prefix = %q, want app/", got)
	}
}

func FuzzParseURL(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"s3://bucket/app?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
		"s3://AKID:" + testSecret + "@bucket",
		"s3://b/../x?profile=%00",
		"s3://bucket?x=1&x=2",
	}, parseURL, func(t *testing.T, raw string, c urlConfig) {
		if validateBucket(c.bucket) != nil {
			t.Fatalf("parseURL(%q) accepted bucket %q", raw, c.bucket)
		}
		if _, err := validatePrefix(c.prefix); c.prefix != "" && err != nil {
			t.Fatalf("parseURL(%q) accepted prefix %q: %v", raw, c.prefix, err)
		}
	})
}
