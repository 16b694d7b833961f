// SkiffSupport module
