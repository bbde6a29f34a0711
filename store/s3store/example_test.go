package s3store_test

import (
	"context"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/s3store"
)

// A store over the client the application already configured.
func ExampleNew() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	st, err := s3store.New(s3.NewFromConfig(cfg), "my-cache-bucket", &s3store.Options{Prefix: "myapp/"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close() // the client stays open: it is the application's
	_ = st           // pass it to cachier.WithStore
}

// A store from a URL, for example a MinIO server on the local machine. Credentials come
// from the standard AWS chain unless the URL carries ACCESS_KEY:SECRET_KEY@.
func ExampleOpenURL() {
	st, err := store.Open(context.Background(),
		"s3://cache/myapp?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
}
