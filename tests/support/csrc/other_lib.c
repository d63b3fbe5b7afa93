const char *who(void) { return "other_lib"; }
