package ldapsecret

import (
	"container/list"
	"sync"
	"time"
)

// cache is a bounded LRU map from user name to a lookup outcome with an
// expiry time. It is safe for concurrent use.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are *cacheEntry
	byKey map[string]*list.Element
}

type cacheEntry struct {
	user    string
	secret  []byte
	err     error
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// get returns a copy of the cached secret or the cached error.
func (c *cache) get(user string, now time.Time) ([]byte, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[user]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, user)
		return nil, nil, false
	}
	c.order.MoveToFront(el)
	if e.err != nil {
		return nil, e.err, true
	}
	return append([]byte(nil), e.secret...), nil, true
}

func (c *cache) put(user string, secret []byte, err error, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cacheEntry{user: user, secret: append([]byte(nil), secret...), err: err, expires: expires}
	if el, ok := c.byKey[user]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byKey[user] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byKey, old.Value.(*cacheEntry).user)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
