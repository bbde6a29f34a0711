package mongostore

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier/store"
)

// The two calls of a miss (store.MissPath) in as few commands as the server allows
// without transactions, which FerretDB lacks: no command both writes one document and
// reads others, so taking the lease and reading the entry are two (an insert, then a
// find), and so are writing the entry and releasing the lease (an update, then a
// delete), with one find more for the counters after the write when there are any.

// maxCreates bounds GetAndCreate's tries when the record it could not create is gone
// by the time it reads it (released in between).
const maxCreates = 4

// GetAndCreate implements store.ReadOrAcquirer with two commands: an insert of rec
// at rk (the unique _id makes exactly one of any number of concurrent creators win,
// as Swap's create-if-absent does), then one find of k, the keys of also and, when
// the insert found a record, rk. The find comes second so that an entry written before
// the lease it replaces was released is seen: a holder writes its entry before it
// deletes rk.
func (s *Store) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	doc, err := s.entryDoc(ctx, rk, rec)
	if err != nil {
		return store.GetAndCreateResult{}, err
	}
	ids := make([]string, 0, 2+len(also))
	ids = append(ids, docID(k))
	for _, a := range also {
		ids = append(ids, docID(a))
	}
	rid := docID(rk)
	var r store.GetAndCreateResult
	for try := 0; ; try++ {
		_, err := s.coll.InsertOne(ctx, doc)
		switch {
		case err == nil:
			r.Created = true
		case mongo.IsDuplicateKeyError(err):
			r.Created = false
		default:
			return store.GetAndCreateResult{}, tooLarge(rk, err)
		}
		read := ids
		if !r.Created {
			read = append(ids[:len(ids):len(ids)], rid)
		}
		docs, err := s.findIDs(ctx, read)
		if err != nil {
			return store.GetAndCreateResult{}, err
		}
		if r.Created {
			r.Cur = rec.Value
			if r.Cur == nil {
				r.Cur = []byte{}
			}
		} else if raw, ok := docs[rid]; ok {
			r.Cur = recordValue(rk, raw)
		} else if try+1 < maxCreates {
			continue // released since the insert: try to create it again
		}
		r.Entry, r.GetErr = store.Entry{}, store.NotFound(k)
		if raw, ok := docs[ids[0]]; ok {
			r.Entry, r.GetErr = decodeEntry(k, raw)
		}
		r.Also = make([][]byte, len(also))
		for i, a := range also {
			if raw, ok := docs[ids[1+i]]; ok {
				r.Also[i] = recordValue(a, raw)
			}
		}
		return r, nil
	}
}

// recordValue is the value of the record document raw of k; a document that cannot
// be read as a record is an empty value, which no lease or counter record has.
func recordValue(k store.Key, raw bson.Raw) []byte {
	e, err := decodeEntry(k, raw)
	if err != nil || e.Value == nil {
		return []byte{}
	}
	return e.Value
}

// findIDs reads the documents of ids (at most maxIn) with one find, by _id; on a
// server that scans for $in (idOnly), with one find per ID, all at once.
func (s *Store) findIDs(ctx context.Context, ids []string) (map[string]bson.Raw, error) {
	if len(ids) > 1 && s.idOnly.Load() {
		raws := make([]bson.Raw, len(ids))
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				raws[i], errs[i] = s.coll.FindOne(ctx, bson.D{{Key: fID, Value: id}}).Raw()
			})
		}
		wg.Wait()
		docs := make(map[string]bson.Raw, len(ids))
		for i, id := range ids {
			switch err := errs[i]; {
			case err == nil:
				docs[id] = raws[i]
			case !errors.Is(err, mongo.ErrNoDocuments):
				return nil, err
			}
		}
		return docs, nil
	}
	filter := bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: ids}}}}
	if len(ids) == 1 {
		filter = bson.D{{Key: fID, Value: ids[0]}}
	}
	docs := make(map[string]bson.Raw, len(ids))
	return docs, s.find(ctx, filter, docs)
}

// find adds the documents filter matches to docs, by _id, with one find.
func (s *Store) find(ctx context.Context, filter bson.D, docs map[string]bson.Raw) error {
	cur, err := s.coll.Find(ctx, filter)
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	return collect(ctx, mongoCursor{cur}, docs)
}

// docCursor is what collect reads off a *mongo.Cursor (mongoCursor); a test gives it
// one that reuses its buffer, as the driver may: its Current is documented valid only
// until the next Next, although v2.9 happens to read each reply into a new buffer.
type docCursor interface {
	Next(context.Context) bool
	Err() error
	current() bson.Raw
}

// mongoCursor is a *mongo.Cursor as a docCursor.
type mongoCursor struct{ *mongo.Cursor }

func (c mongoCursor) current() bson.Raw { return c.Current }

// collect adds the documents of cur to docs, by _id.
func collect(ctx context.Context, cur docCursor, docs map[string]bson.Raw) error {
	for cur.Next(ctx) {
		raw := cur.current()
		if id, ok := raw.Lookup(fID).StringValueOK(); ok {
			// The next Next may overwrite raw: each document keeps its own copy.
			docs[id] = append(bson.Raw(nil), raw...)
		}
	}
	return cur.Err()
}

// SetAndDelete implements store.WriteAndReleaser with two commands, and a find of
// also after them when also is not empty. The first is one update of two statements,
// in order: the entry's upsert, and the insert of Swap's first claim on rk's value
// old (an upsert that sets nothing on a claim already there). The second, when the
// claim is this call's, is one delete of two statements: rk filtered on its value,
// then the claim. The claim makes the delete exclusive with every Swap from old (a
// renewal, a takeover), as Swap's own delete is: FerretDB evaluates a filtered delete
// as a read, then a delete by _id. When the claim is taken already (another caller is
// swapping from old, or a dead one left it), the delete is Swap's.
func (s *Store) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	doc, err := s.entryDoc(ctx, k, e)
	if err != nil {
		return false, nil, err
	}
	rid := docID(rk)
	cid := claimBase(rid, old) + "0"
	models := []mongo.WriteModel{
		mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: fID, Value: docID(k)}}).SetReplacement(doc).SetUpsert(true),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: fID, Value: cid}}).
			SetUpdate(bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: fClaimUntil, Value: nanos(s.now().Add(ClaimTTL))}}}}).
			SetUpsert(true),
	}
	var claimed bool
	for range upsertRetries {
		var res *mongo.BulkWriteResult
		res, err = s.coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true))
		if err == nil {
			// By _id, not by index: FerretDB numbers the upserts it reports among
			// themselves, not among the statements.
			for _, id := range res.UpsertedIDs {
				claimed = claimed || id == cid
			}
			break
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) != 1 || !isDuplicateKey(bwe.WriteErrors[0].WriteError) {
			break
		}
		if bwe.WriteErrors[0].Index == 1 {
			err = nil // the entry is written; another caller inserted the claim first
			break
		}
		// The entry's upsert lost an insert race (see Set): ordered, the claim was not
		// tried either.
	}
	if err != nil {
		return false, nil, tooLarge(k, err)
	}
	var deleted bool
	if claimed {
		rfilter := bson.D{{Key: fID, Value: rid}, {Key: fValue, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: old}}}
		if s.idOnly.Load() {
			// The server would scan for rfilter, and evaluate it as a read and then
			// a delete by _id anyway: read rk by _id, then delete it by _id if it
			// holds old. The claim keeps every Swap from old out in between.
			docs, err := s.findIDs(ctx, []string{rid})
			if err != nil {
				_, _ = s.coll.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: fID, Value: cid}})
				return false, nil, err
			}
			rfilter = bson.D{{Key: fID, Value: rid}}
			if raw, ok := docs[rid]; !ok || !bytes.Equal(recordValue(rk, raw), old) {
				rfilter = bson.D{{Key: fID, Value: cid + ":none"}} // no such document
			}
		}
		res, err := s.coll.BulkWrite(ctx, []mongo.WriteModel{
			mongo.NewDeleteOneModel().SetFilter(rfilter),
			mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: fID, Value: cid}}),
		}, options.BulkWrite().SetOrdered(true))
		if err != nil {
			// The claim may be left: delete it on its own, or it expires after ClaimTTL.
			_, _ = s.coll.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: fID, Value: cid}})
			return false, nil, err
		}
		// Nobody else deletes this call's claim: one document deleted is the claim.
		deleted = res.DeletedCount == 2
	} else if deleted, err = s.Swap(ctx, rk, old, nil); err != nil {
		return false, nil, err
	}
	vals := make([][]byte, len(also))
	if len(also) == 0 {
		return deleted, vals, nil
	}
	ids := make([]string, len(also))
	for i, a := range also {
		ids[i] = docID(a)
	}
	docs, err := s.findIDs(ctx, ids)
	if err != nil {
		return false, nil, err
	}
	for i, a := range also {
		if raw, ok := docs[ids[i]]; ok {
			vals[i] = recordValue(a, raw)
		}
	}
	return deleted, vals, nil
}

// isDuplicateKey reports whether we is a duplicate key error (E11000 and its
// legacy codes, as mongo.IsDuplicateKeyError has them).
func isDuplicateKey(we mongo.WriteError) bool {
	return we.Code == 11000 || we.Code == 11001 || we.Code == 12582
}
