complete --keep-order --exclusive --command paragon-admin --arguments "(COMPLETE=fish paragon-admin -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
