// SkiffImages module
