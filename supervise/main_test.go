package supervise

import (
	"testing"

	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }
