# Writes the sample config file IN as a C++ string constant into OUT.
file(READ ${IN} text)
file(WRITE ${OUT} "// Generated from etc/config.toml.\nnamespace crib {\nextern const char kDefaultConfigText[];\nconst char kDefaultConfigText[] = R\"crib_config(${text})crib_config\";\n}  // namespace crib\n")
