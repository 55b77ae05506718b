
set edit:completion:arg-completer[paragon-admin] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) COMPLETE="elvish" paragon-admin -- $@words) | to-lines
}

