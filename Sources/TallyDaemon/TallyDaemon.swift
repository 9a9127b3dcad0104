public enum TallyDaemon {}
