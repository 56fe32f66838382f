from selboost.cli import main

raise SystemExit(main())
