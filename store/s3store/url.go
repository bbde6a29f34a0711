package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/store"
)

func init() { store.Register(OpenURL, "s3") }

// urlConfig is what a store URL says, before any I/O.
type urlConfig struct {
	bucket    string
	prefix    string
	endpoint  string // "" for AWS
	region    string // "" for the environment's
	profile   string
	pathStyle bool
	accessKey string // with secretKey, static credentials from the URL's userinfo
	secretKey string
}

// parseURL checks a store URL and extracts its settings without any I/O. Its errors
// match store.ErrBadURL and never carry the secret key.
func parseURL(u *url.URL) (urlConfig, error) {
	bad := func(format string, args ...any) error { return store.BadURL(u, format, args...) }
	var c urlConfig
	if !strings.EqualFold(u.Scheme, "s3") {
		return c, bad("scheme must be s3")
	}
	if u.Opaque != "" {
		return c, bad("use s3://bucket/prefix")
	}
	if u.Fragment != "" {
		return c, bad("a fragment has no meaning here")
	}
	if u.Port() != "" {
		return c, bad("the host is the bucket name and takes no port; give the server as ?endpoint=")
	}
	c.bucket = u.Hostname()
	if err := validateBucket(c.bucket); err != nil {
		return c, bad("%v", err)
	}
	if u.User != nil {
		secret, ok := u.User.Password()
		if u.User.Username() == "" || !ok || secret == "" {
			return c, bad("credentials in the URL must be the access key and the secret key, separated by a colon, before the bucket")
		}
		c.accessKey, c.secretKey = u.User.Username(), secret
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		prefix, err := validatePrefix(p)
		if err != nil {
			return c, bad("%v", err)
		}
		c.prefix = prefix
	}
	p, err := store.ReadParams(u, "endpoint", "path_style", "profile", "region")
	if err != nil {
		return c, err
	}
	p.Check("endpoint", &c.endpoint, checkEndpoint)
	p.Check("region", &c.region, checkRegion)
	p.Bool("path_style", &c.pathStyle)
	c.profile = p.String("profile")
	if err := p.Err(); err != nil {
		return urlConfig{}, err
	}
	return c, nil
}

// checkEndpoint says what is wrong with an endpoint= URL.
func checkEndpoint(ep string) error {
	e, err := url.Parse(ep)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case e.Scheme != "http" && e.Scheme != "https", e.Host == "":
		return errors.New("must be http://host:port or https://host:port")
	case e.User != nil:
		return errors.New("must not carry credentials; put them before the bucket")
	case e.RawQuery != "" || e.Fragment != "":
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// checkRegion says what is wrong with a region= name.
func checkRegion(r string) error {
	for i := range len(r) {
		if ch := r[i]; !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-') {
			return fmt.Errorf("%q is not like us-east-1", r)
		}
	}
	return nil
}

// OpenURL opens a store from a URL of the form
//
//	s3://[ACCESS_KEY:SECRET_KEY@]bucket[/prefix][?endpoint=URL&region=R&path_style=true&profile=P]
//
// for example s3://cache/myapp?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
// for a MinIO server. Without credentials in the URL, the standard AWS chain is used
// (environment, shared config and credentials files with the optional profile, SSO,
// instance roles). The region defaults to the environment's, or us-east-1. The prefix
// defaults to "cachier/". Unknown parameters are errors matching store.ErrBadURL; the
// secret key never appears in an error. OpenURL is registered for the "s3" scheme, so
// store.Open accepts these URLs once this package is imported. The store owns the
// client it creates; Close releases its connections.
func OpenURL(ctx context.Context, u *url.URL) (store.Store, error) {
	c, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if c.region != "" {
		opts = append(opts, config.WithRegion(c.region))
	}
	if c.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.profile))
	}
	if c.accessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.accessKey, c.secretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: open %s: AWS configuration: %w", store.RedactURL(u), err)
	}
	// Freeze the SDK's default HTTP client (with AWS_CA_BUNDLE and the like applied) into
	// a plain one whose idle connections Close can release.
	closeFn := func() {}
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		hc := bc.Freeze()
		cfg.HTTPClient = hc
		if c, ok := hc.(interface{ CloseIdleConnections() }); ok {
			closeFn = c.CloseIdleConnections
		}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.endpoint != "" {
			o.BaseEndpoint = aws.String(c.endpoint)
		}
		o.UsePathStyle = c.pathStyle
		// Not "Response has no supported checksum" on stderr for every read from a
		// server (MinIO, older S3 clones) that sends no checksum.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s, err := New(client, c.bucket, &Options{Prefix: c.prefix})
	if err != nil {
		closeFn()
		return nil, err
	}
	s.closeFn = closeFn
	return store.Adapt(s), nil
}

// Ping checks that the server answers and the bucket exists or can be created with
// the store's credentials. store.Open calls it unless the URL says lazy=1.
func (s *Store) Ping(ctx context.Context) error { return s.ensureBucket(ctx) }
