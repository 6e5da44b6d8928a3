using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace HcService.Store.Migrations
{
    /// <inheritdoc />
    public partial class RunEventsAndMetricSeq : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateSequence(
                name: "metric_point_seq",
                schema: "hc");

            migrationBuilder.AddColumn<long>(
                name: "Seq",
                schema: "hc",
                table: "metric_points",
                type: "bigint",
                nullable: false,
                defaultValueSql: "nextval('hc.metric_point_seq')");

            migrationBuilder.CreateTable(
                name: "run_events",
                schema: "hc",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    RunId = table.Column<long>(type: "bigint", nullable: false),
                    Status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Previous = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    Attempt = table.Column<int>(type: "integer", nullable: false),
                    Step = table.Column<long>(type: "bigint", nullable: false),
                    TotalSteps = table.Column<long>(type: "bigint", nullable: false),
                    Reason = table.Column<string>(type: "text", nullable: true),
                    Time = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false, defaultValueSql: "now()")
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_run_events", x => x.Id);
                    table.ForeignKey(
                        name: "FK_run_events_runs_RunId",
                        column: x => x.RunId,
                        principalSchema: "hc",
                        principalTable: "runs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_metric_points_RunId_Seq",
                schema: "hc",
                table: "metric_points",
                columns: new[] { "RunId", "Seq" });

            migrationBuilder.CreateIndex(
                name: "IX_run_events_RunId_Id",
                schema: "hc",
                table: "run_events",
                columns: new[] { "RunId", "Id" });

            // Every status transition of a run (and every new attempt) becomes an event in the transaction that made it,
            // and wakes the API's event streams on commit. The reason: what the writer put in the transaction-local
            // setting hc.event_reason (a hand-back), else what the transition itself says.
            migrationBuilder.Sql("""
                CREATE FUNCTION hc.record_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE
                    previous text := CASE WHEN TG_OP = 'UPDATE' THEN OLD."Status" END;
                    reason text := nullif(current_setting('hc.event_reason', true), '');
                BEGIN
                    IF TG_OP = 'UPDATE' AND OLD."Status" IS NOT DISTINCT FROM NEW."Status" AND OLD."Attempt" IS NOT DISTINCT FROM NEW."Attempt" THEN
                        RETURN NULL;
                    END IF;
                    IF reason IS NULL THEN
                        reason := CASE
                            WHEN TG_OP = 'INSERT' THEN 'submitted'
                            WHEN NEW."Status" = 'running' THEN format('attempt %s on %s', NEW."Attempt", coalesce(NEW."LeaseOwner", 'a worker'))
                            WHEN NEW."Status" = 'cancelling' THEN 'cancel requested: the attempt checkpoints and stops'
                            WHEN NEW."Status" = 'queued' AND previous IN ('failed', 'cancelled') THEN 'retried'
                            WHEN NEW."Status" = 'queued' AND previous IN ('running', 'cancelling')
                                THEN format('requeued: the lease of %s expired (worker lost or stopped)', coalesce(OLD."LeaseOwner", 'its worker'))
                            WHEN NEW."Status" = 'cancelled' AND previous = 'queued' THEN 'cancelled before it started'
                            ELSE NEW."FailureReason"
                        END;
                    END IF;
                    INSERT INTO hc.run_events ("RunId", "Status", "Previous", "Attempt", "Step", "TotalSteps", "Reason", "Time")
                    VALUES (NEW."Id", NEW."Status", previous, NEW."Attempt", NEW."Step", NEW."TotalSteps", reason, now());
                    PERFORM pg_notify('hc_run_events', NEW."Id"::text);
                    RETURN NULL;
                END $$;

                CREATE TRIGGER run_status_events AFTER INSERT OR UPDATE OF "Status", "Attempt" ON hc.runs
                    FOR EACH ROW EXECUTE FUNCTION hc.record_run_event();

                -- Runs that exist already: one event with the state they are in.
                INSERT INTO hc.run_events ("RunId", "Status", "Previous", "Attempt", "Step", "TotalSteps", "Reason", "Time")
                SELECT "Id", "Status", NULL, "Attempt", "Step", "TotalSteps", "FailureReason", "UpdatedAt" FROM hc.runs ORDER BY "UpdatedAt", "Id";
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER run_status_events ON hc.runs;
                DROP FUNCTION hc.record_run_event();
                """);

            migrationBuilder.DropTable(
                name: "run_events",
                schema: "hc");

            migrationBuilder.DropIndex(
                name: "IX_metric_points_RunId_Seq",
                schema: "hc",
                table: "metric_points");

            migrationBuilder.DropColumn(
                name: "Seq",
                schema: "hc",
                table: "metric_points");

            migrationBuilder.DropSequence(
                name: "metric_point_seq",
                schema: "hc");
        }
    }
}
